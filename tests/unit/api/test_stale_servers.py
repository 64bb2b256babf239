"""``GET /v1/stale-servers``: its query and its policy target.

What it answers, on MariaDB, is in tests/functional/db/test_freshness.py.
"""

import pytest
from oslo_policy import opts as policy_opts

from snapmanager_nova import policy
from tests.unit.api import fakes

PATH = "/v1/stale-servers"
V1_2 = {"OpenStack-API-Version": "snapmanager 1.2"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("grace=-1", "grace: '-1' is not a whole number of seconds"),
        ("grace=1h", "grace: '1h' is not a whole number of seconds"),
        ("limit=0", "limit: '0' is not between 1 and 1000"),
        ("marker=x", "marker: 'x' is not a UUID"),
        ("all_projects=1", "all_projects: unknown query parameter"),
    ],
)
def test_bad_queries_are_400(api, query, message):
    resp = api.get(f"{PATH}?{query}", who=fakes.ADMIN, headers=V1_2)
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"].startswith(message)


def test_nothing_stale_is_an_empty_page(api):
    resp = api.get(
        f"{PATH}?project_id=demo&grace=0", who=fakes.ADMIN, headers=V1_2
    )
    assert resp.status_int == 200, resp.text
    assert resp.json == {
        "stale_servers": [],
        "stale_servers_links": [],
        "release_pending": [],
    }


@pytest.mark.parametrize("version", [None, "snapmanager 1.1"])
def test_versions_before_1_2_have_no_such_route(api, version):
    headers = {} if version is None else {"OpenStack-API-Version": version}
    resp = api.get(PATH, who=fakes.ADMIN, headers=headers)
    assert resp.status_int == 404, resp.text
    assert resp.json["error"]["message"] == f"No resource at {PATH}."
    latest = {"OpenStack-API-Version": "snapmanager latest"}
    assert api.get(PATH, who=fakes.ADMIN, headers=latest).status_int == 200


@pytest.fixture
def relaxed(conf, tmp_path):
    """The rule relaxed to a project's readers, as an operator might."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        '"snapmanager:stale_server:list": "rule:project_reader_or_admin"\n'
    )
    policy_opts.set_defaults(conf.conf)
    conf.config(policy_file=str(path), group="oslo_policy")
    policy.reset()


@pytest.mark.parametrize(
    ("query", "status"),
    [("?project_id=demo", 200), ("?project_id=other", 403), ("", 403)],
)
def test_the_target_is_the_project_asked_about(api, relaxed, query, status):
    # Relaxed to readers, a reader may check their own project, never
    # another's nor every project's.
    resp = api.get(PATH + query, who=fakes.READER, headers=V1_2)
    assert resp.status_int == status, resp.text
