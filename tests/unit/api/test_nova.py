"""SDKNovaServers: openstacksdk and keystoneauth against a Nova over HTTP."""

import uuid

import pytest
from keystoneauth1 import loading as ks_loading

from snapmanager_nova import exception
from snapmanager_nova.api import nova
from tests.unit.api import nova_http


@pytest.fixture
def stub():
    stub = nova_http.NovaStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def servers(conf, stub):
    # keystoneauth's "none" plugin: no Keystone, the endpoint as given.
    conf.config(auth_type="none", group="nova")
    ks_loading.load_auth_from_conf_options(conf.conf, "nova")
    conf.config(endpoint=stub.endpoint, group="nova")
    return nova.SDKNovaServers(conf.conf)


def test_get_maps_nova_fields(servers, stub):
    server_id = str(uuid.uuid4())
    stub.add(server_id, "demo", host="compute-5", status="SHUTOFF")
    server = servers.get(None, server_id)
    assert server == nova.Server(
        id=server_id,
        project_id="demo",
        host="compute-5",
        status="SHUTOFF",
        name=f"vm-{server_id[:8]}",
    )
    # The host is only shown from a microversion on; the SDK negotiates.
    path, headers = stub.requests[-1]
    assert path == f"/v2.1/servers/{server_id}"
    assert headers.get("OpenStack-API-Version", "").startswith("compute 2.")


def test_unknown_server_is_not_found(servers, stub):
    with pytest.raises(exception.ServerNotFound):
        servers.get(None, str(uuid.uuid4()))


def test_malformed_id_is_not_asked(servers, stub):
    with pytest.raises(exception.ServerNotFound):
        servers.get(None, "../../os-hypervisors")
    assert stub.requests == []


def test_nova_error_is_unavailable(servers, stub):
    stub.fail_with = 500
    with pytest.raises(exception.ServiceUnavailable) as caught:
        servers.get(None, str(uuid.uuid4()))
    assert caught.value.code == 503


def test_nova_down_is_unavailable(servers, stub):
    stub.stop()
    with pytest.raises(exception.ServiceUnavailable):
        servers.get(None, str(uuid.uuid4()))


def test_shelved_server_has_no_host(servers, stub):
    server_id = str(uuid.uuid4())
    stub.add(server_id, "demo", host=None, status="SHELVED_OFFLOADED")
    assert servers.get(None, server_id).host is None


def test_a_task_in_progress_is_seen(servers, stub):
    # A restore is refused while Nova is busy with the server.
    server_id = str(uuid.uuid4())
    stub.add(server_id, "demo")
    stub.servers[server_id]["OS-EXT-STS:task_state"] = "migrating"
    assert servers.get(None, server_id).task_state == "migrating"
