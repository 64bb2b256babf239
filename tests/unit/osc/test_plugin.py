"""The plugin's registration and hooks, as python-openstackclient uses
them."""

import argparse
import importlib.metadata
import pathlib
import subprocess
import sys
import types

from osc_lib.command import command

from snapmanager_nova.osc import plugin
from snapmanager_nova.osc.v1 import client as sm_client

COMMANDS = {
    "server snapshot-policy set",
    "server snapshot-policy unset",
    "server snapshot-policy show",
    "server snapshot-policy list",
    "server snapshot-policy default set",
    "server snapshot-policy default unset",
    "server snapshot-policy default show",
    "server snapshot list",
    "server snapshot create",
    "server snapshot show",
    "server snapshot delete",
    "server snapshot restore",
    "server snapshot operation show",
    "server snapshot operation retry",
    "server snapshot operation abandon",
    "server snapshot freshness list",
    "server snapshot quota show",
    "server snapshot quota set",
    "server snapshot quota delete",
}


def _entry_points(group):
    return {
        ep.name: ep
        for ep in importlib.metadata.entry_points(group=group)
        if ep.value.startswith("snapmanager_nova.")
    }


def test_extension_points_at_the_plugin_module():
    (ep,) = _entry_points("openstack.cli.extension").values()
    assert ep.name == plugin.API_NAME
    assert ep.load() is plugin


def test_command_group_matches_the_api_name_and_version():
    # OSC loads the group openstack.<API_NAME>.v<version>.
    group = f"openstack.{plugin.API_NAME}.v{plugin.DEFAULT_API_VERSION}"
    commands = _entry_points(group)
    assert {name.replace("_", " ") for name in commands} == COMMANDS
    for ep in commands.values():
        assert issubclass(ep.load(), command.Command), ep.name


def test_options_take_the_environment(monkeypatch):
    monkeypatch.setenv("OS_SNAPMANAGER_ENDPOINT", "http://api:8799")
    parser = plugin.build_option_parser(argparse.ArgumentParser())

    options = parser.parse_args([])

    assert options.os_snapmanager_endpoint == "http://api:8799"
    assert options.os_snapmanager_api_version == "1"


def test_make_client_uses_the_session_and_the_endpoint_option():
    seen = []
    cloud = types.SimpleNamespace(
        get_endpoint=lambda service: seen.append(service) or "http://a/"
    )
    instance = types.SimpleNamespace(
        _cli_options=cloud,
        setup_auth=lambda: None,
        session=object(),
        interface="internal",
        region_name="RegionTwo",
    )

    client = plugin.make_client(instance)

    assert isinstance(client, sm_client.Client)
    assert seen == ["snapmanager"]
    assert client.base_url == "http://a/v1"
    assert client._adapter.session is instance.session
    assert client._adapter.interface == "internal"
    assert client._adapter.region_name == "RegionTwo"


def test_openstack_lists_the_commands():
    openstack = pathlib.Path(sys.executable).parent / "openstack"
    result = subprocess.run(
        [str(openstack), "command", "list", "--group", "snapmanager"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # A plugin that fails to import is only a warning for openstack.
    assert "snapmanager" not in result.stderr
    for name in COMMANDS:
        assert f" {name} " in result.stdout
