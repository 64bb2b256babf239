"""devstack/plugin.sh, phase by phase, against recorders of DevStack.

Each test sources devstack/settings and devstack/plugin.sh through
harness.sh for one kind of node and reads the calls they made.
"""

import ast
import configparser
import importlib.util
import pathlib
import re
import subprocess

import pytest

from tests.unit.devstack import plugin_run
from tests.unit.devstack.plugin_run import ALL_IN_ONE
from tests.unit.devstack.plugin_run import COMPUTE_ONLY
from tests.unit.devstack.plugin_run import CONF
from tests.unit.devstack.plugin_run import CONF_DIR
from tests.unit.devstack.plugin_run import DEVSTACK
from tests.unit.devstack.plugin_run import TOP
from tests.unit.devstack.plugin_run import UWSGI_CONF

SERVICES = ("snapmanager-api", "snapmanager-conductor", "snapmanager-compute")

# What the harness defines, and the commands it lets the record catch:
# a call of anything else is a typo in the plugin (bash would only have
# said "command not found" in the middle of stack.sh).
KNOWN_CALLS = {
    "phase",
    "xtrace",
    "enabled",
    "enable_service",
    "iniset",
    "iniget",
    "hostname",
    "iniset_rpc_backend",
    "configure_keystone_authtoken_middleware",
    "database_connection_url",
    "get_notification_url",
    "create_service_user",
    "get_or_create_service",
    "get_or_create_endpoint",
    "recreate_database",
    "pip_install",
    "write_uwsgi_config",
    "run_process",
    "stop_process",
    "wait_for_service",
    "echo_summary",
    "die",
    "cp",
    "rm",
    "mkdir",
    "install",
    "sudo",
    "ln",
    "chown",
}


@pytest.fixture
def all_in_one(tmp_path):
    return plugin_run.run(tmp_path / "all-in-one", ALL_IN_ONE)


@pytest.fixture
def compute_only(tmp_path):
    return plugin_run.run(tmp_path / "compute-only", COMPUTE_ONLY)


def _names(run):
    names = set()
    for call in run.calls:
        if call.name.startswith(str(run.bin_dir) + "/"):
            names.add("<venv>/" + call.name.rsplit("/", 1)[1])
        else:
            names.add(call.name)
    return names


# -- a node with everything ------------------------------------------------


def test_all_in_one_enables_every_service(all_in_one):
    assert all_in_one.returncode == 0, all_in_one.stderr
    assert set(SERVICES) <= set(all_in_one.enabled())


def test_every_call_is_a_known_devstack_function(all_in_one, compute_only):
    unknown = (_names(all_in_one) | _names(compute_only)) - KNOWN_CALLS
    assert unknown == {
        "<venv>/oslo-config-generator",
        "<venv>/snapmanager-manage",
    }


def test_phases_run_their_steps_in_order(all_in_one):
    run = all_in_one
    steps = [
        (call.phase, call.name, call.args[:1])
        for call in run.calls
        if call.name
        in (
            "pip_install",
            "write_uwsgi_config",
            "get_or_create_endpoint",
            "recreate_database",
            "run_process",
            "wait_for_service",
            "stop_process",
        )
    ]
    assert steps == [
        ("stack install", "pip_install", ("-c",)),
        ("stack post-config", "write_uwsgi_config", (UWSGI_CONF,)),
        ("stack post-config", "get_or_create_endpoint", ("service-id-0001",)),
        ("stack extra", "recreate_database", ("snapmanager",)),
        ("stack extra", "run_process", ("snapmanager-conductor",)),
        ("stack extra", "run_process", ("snapmanager-compute",)),
        ("stack extra", "run_process", ("snapmanager-api",)),
        ("stack extra", "wait_for_service", ("60",)),
        ("unstack", "stop_process", ("snapmanager-api",)),
        ("unstack", "stop_process", ("snapmanager-compute",)),
        ("unstack", "stop_process", ("snapmanager-conductor",)),
    ]


def test_install_uses_the_projects_constraints(all_in_one):
    (pip,) = all_in_one.named("pip_install")
    constraints = all_in_one.state_path / "upper-constraints.txt"
    assert pip.args == ("-c", str(constraints), "-e", "%s[dashboard]" % TOP)
    original = (TOP / "upper-constraints.txt").read_text().splitlines()
    # Horizon is installed from DevStack's checkout: its pin is dropped,
    # every other line is kept as it is.
    assert constraints.read_text().splitlines() == [
        line for line in original if not line.startswith("horizon===")
    ]
    assert any(line.startswith("horizon===") for line in original)


def test_libs_from_git_are_not_constrained(tmp_path):
    run = plugin_run.run(
        tmp_path,
        "n-api,n-cpu",
        "stack install",
        LIBS_FROM_GIT="oslo.messaging,Keystonemiddleware",
    )
    (pip,) = run.named("pip_install")
    assert pip.args[-1] == str(TOP), "no dashboard extra without horizon"
    kept = (run.state_path / "upper-constraints.txt").read_text()
    assert "\nhorizon===" in kept
    # The pins spell names as pip normalizes them.
    assert "\noslo-messaging===" not in kept
    assert "\nkeystonemiddleware===" not in kept
    assert "\noslo-log===" in kept
    original = (TOP / "upper-constraints.txt").read_text()
    assert "\noslo-messaging===" in original
    assert "\nkeystonemiddleware===" in original


def test_constraint_names_are_compared_as_pip_does(tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text(
        "# a comment\nOslo_Messaging===1\noslo.log===2\nHorizon===3\n"
        "python-novaclient===4;python_version>='3.11'"
    )
    run = plugin_run.run(
        tmp_path,
        "n-api,horizon",
        "stack install",
        LIBS_FROM_GIT="oslo-messaging,Python_NovaClient",
        SNAPMANAGER_CONSTRAINTS=str(pins),
    )
    kept = (run.state_path / "upper-constraints.txt").read_text()
    assert kept == "# a comment\noslo.log===2\n"


def test_config_is_generated_then_set(all_in_one):
    run = all_in_one
    generate = run.position(str(run.bin_dir / "oslo-config-generator"))
    (generator,) = run.named(str(run.bin_dir / "oslo-config-generator"))
    args = generator.args
    namespaces = [
        args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"
    ]
    assert namespaces[0] == "snapmanager"
    assert args[args.index("--output-file") + 1] == CONF
    first_iniset = run.position("iniset", CONF)
    assert run.position("rm", "-f", CONF) < generate < first_iniset
    assert run.named("sudo", "stack post-config")[0].args == (
        "install",
        "-d",
        "-o",
        "stack",
        CONF_DIR,
    )


def test_config_options(all_in_one):
    conf = all_in_one.conf()
    assert conf[("DEFAULT", "state_path")] == str(all_in_one.state_path)
    assert conf[("DEFAULT", "host")] == "harness-node"
    assert conf[("database", "connection")] == (
        "mysql+pymysql://root:db-secret@192.0.2.10/snapmanager?charset=utf8"
    )
    assert conf[("nova", "username")] == "snapmanager"
    assert conf[("nova", "password")] == "service-secret"
    assert conf[("nova", "project_name")] == "service"
    assert conf[("nova", "auth_url")] == "http://192.0.2.10/identity"
    assert conf[("nova", "notification_transport_url")].startswith("rabbit://")
    assert conf[("compute", "backends")] == "file"
    assert conf[("compute", "instances_path")] == str(
        all_in_one.work / "opt" / "stack" / "data" / "nova" / "instances"
    )
    assert "rbd" not in all_in_one.sections()
    (rpc,) = all_in_one.named("iniset_rpc_backend")
    assert rpc.args == ("snapmanager", CONF, "DEFAULT")
    (authtoken,) = all_in_one.named("configure_keystone_authtoken_middleware")
    assert authtoken.args == (CONF, "snapmanager")


def test_host_is_nova_computes(tmp_path):
    run = plugin_run.run(
        tmp_path, ALL_IN_ONE, "stack post-config", NOVA_HOST="compute-7"
    )
    assert run.conf()[("DEFAULT", "host")] == "compute-7"
    assert run.named("hostname") == []


def _configure_with_ceph(tmp_path, ceph_nova, **env):
    """post-config of a node with devstack-plugin-ceph enabled."""
    return plugin_run.run(
        tmp_path,
        ALL_IN_ONE,
        "stack post-config",
        DEVSTACK_PLUGINS="devstack-plugin-ceph,snapmanager",
        ENABLE_CEPH_NOVA=ceph_nova,
        **env,
    )


def test_rbd_when_ceph_holds_novas_disks(tmp_path):
    run = _configure_with_ceph(tmp_path, "True", NOVA_CEPH_POOL="nova-disks")
    conf = run.conf()
    assert conf[("compute", "backends")] == "file,rbd"
    assert conf[("rbd", "pool")] == "nova-disks"
    assert conf[("rbd", "rbd_user")] == "cinder"
    assert conf[("rbd", "ceph_conf")] == "/etc/ceph/ceph.conf"


def test_no_rbd_when_ceph_does_not_hold_novas_disks(tmp_path):
    run = _configure_with_ceph(tmp_path, "False")
    assert run.conf()[("compute", "backends")] == "file"
    assert "rbd" not in run.sections()


def test_api_runs_under_uwsgi_on_port_8799(all_in_one):
    run = all_in_one
    (uwsgi,) = run.named("write_uwsgi_config")
    assert uwsgi.args == (
        UWSGI_CONF,
        "snapmanager_nova.wsgi.api:application",
        "",
        "0.0.0.0:8799",
        "snapmanager-api",
    )
    assert run.conf(UWSGI_CONF) == {
        ("uwsgi", "env"): "SNAPMANAGER_CONFIG_FILES=%s" % CONF
    }
    (api,) = [c for c in run.named("run_process") if c.args[0] == SERVICES[0]]
    assert api.args[1] == (
        "/usr/local/bin/uwsgi --procname-prefix snapmanager-api --ini %s"
        % UWSGI_CONF
    )
    (wait,) = run.named("wait_for_service")
    assert wait.args == ("60", "http://192.0.2.10:8799/")


def test_services_run_from_the_venv(all_in_one):
    commands = {
        call.args[0]: call.args[1:] for call in all_in_one.named("run_process")
    }
    venv = all_in_one.bin_dir
    assert commands["snapmanager-conductor"] == (
        "%s/snapmanager-conductor --config-file %s" % (venv, CONF),
    )
    assert commands["snapmanager-compute"] == (
        "%s/snapmanager-compute --config-file %s" % (venv, CONF),
        "libvirt",
    )


def test_keystone_service_user_and_catalog(all_in_one):
    (user,) = all_in_one.named("create_service_user")
    assert user.args == ("snapmanager", "admin")
    (service,) = all_in_one.named("get_or_create_service")
    assert service.args[:2] == ("snapmanager", "snapmanager")
    (endpoint,) = all_in_one.named("get_or_create_endpoint")
    url = "http://192.0.2.10:8799"
    # Public and internal, as tools/quickstart/keystone.py registers them.
    assert endpoint.args == ("service-id-0001", "RegionOne", url, "", url)


def test_quickstart_registers_the_same_catalog_entry():
    keystone = (TOP / "tools" / "quickstart" / "keystone.py").read_text()
    stack = (TOP / "tools" / "quickstart" / "stack.py").read_text()
    assert 'SERVICE_TYPE = "snapmanager"' in keystone
    assert 'for interface in ("public", "internal")' in keystone
    assert "API_PORT = 8799" in stack
    assert 'API_URL = "http://%s:%d" % (API_HOST, API_PORT)' in stack


def test_database_is_recreated_then_synced(all_in_one):
    run = all_in_one
    manage = str(run.bin_dir / "snapmanager-manage")
    (sync,) = run.named(manage)
    assert sync.phase == "stack extra"
    assert sync.args == ("--config-file", CONF, "db", "sync")
    recreate = run.position("recreate_database", "snapmanager")
    assert recreate < run.position(manage) < run.position("run_process")


def test_unstack_and_clean(all_in_one):
    assert [c.name for c in all_in_one.calls if c.phase == "unstack"] == [
        "phase",
        "stop_process",
        "stop_process",
        "stop_process",
        "xtrace",
    ]
    cleaned = [c.args for c in all_in_one.calls if c.phase == "clean"]
    assert ("rm", "-rf", CONF_DIR) in cleaned
    assert ("-rf", str(all_in_one.state_path)) in cleaned


def test_trace_setting_is_restored(tmp_path):
    for setting in ("on", "off"):
        run = plugin_run.run(tmp_path / setting, ALL_IN_ONE, XTRACE=setting)
        assert run.returncode == 0, run.stderr
        after = [call.args for call in run.named("xtrace")]
        assert after == [(setting,)] * len(plugin_run.PHASES)


def test_api_that_does_not_answer_stops_the_stack(tmp_path):
    run = plugin_run.run(
        tmp_path, ALL_IN_ONE, "stack extra", WAIT_FOR_SERVICE_RC="1"
    )
    assert run.returncode == 1
    (die,) = run.named("die")
    assert "snapmanager-api did not answer" in die.args[-1]


# -- a compute-only node ---------------------------------------------------


def test_compute_only_node_runs_only_the_agent(compute_only):
    run = compute_only
    assert run.returncode == 0, run.stderr
    enabled = set(run.enabled())
    assert "snapmanager-compute" in enabled
    assert not enabled & {"snapmanager-api", "snapmanager-conductor"}
    assert run.started() == ["snapmanager-compute"]
    for step in (
        "recreate_database",
        "create_service_user",
        "get_or_create_endpoint",
        "write_uwsgi_config",
        "wait_for_service",
        "configure_keystone_authtoken_middleware",
    ):
        assert run.named(step) == [], step
    assert run.named(str(run.bin_dir / "snapmanager-manage")) == []
    (pip,) = run.named("pip_install")
    assert pip.args[-1] == str(TOP)


def test_compute_only_config_has_no_database_or_nova_credentials(
    compute_only,
):
    sections = compute_only.sections()
    assert {"DEFAULT", "compute"} <= sections
    assert not sections & {"database", "nova", "api", "keystone_authtoken"}
    (rpc,) = compute_only.named("iniset_rpc_backend")
    assert rpc.args[1] == CONF


def test_controller_without_nova_compute_runs_no_agent(tmp_path):
    run = plugin_run.run(tmp_path, "key,mysql,rabbit,n-api,n-cond,n-sch")
    assert run.started() == ["snapmanager-conductor", "snapmanager-api"]
    assert "compute" not in run.sections()


def test_agent_runs_only_beside_nova_compute(tmp_path):
    # Enabled by hand in local.conf on a node without n-cpu: nothing to
    # serve there.
    run = plugin_run.run(
        tmp_path, "key,mysql,rabbit,n-api,snapmanager-compute"
    )
    assert "snapmanager-compute" in run.enabled()
    assert run.started() == ["snapmanager-conductor", "snapmanager-api"]
    assert "compute" not in run.sections()


def test_local_conf_can_disable_a_service(tmp_path):
    run = plugin_run.run(
        tmp_path, ALL_IN_ONE, DISABLED_SERVICES="snapmanager-api"
    )
    assert "snapmanager-api" not in run.enabled()
    assert run.started() == ["snapmanager-conductor", "snapmanager-compute"]
    assert run.named("write_uwsgi_config") == []
    assert run.named("get_or_create_endpoint") == []


def test_nothing_runs_without_snapmanager_services(tmp_path):
    run = plugin_run.run(tmp_path, "key,mysql,rabbit,g-api")
    assert {call.name for call in run.calls} == {"phase", "xtrace", "enabled"}


# -- the Horizon plugin's files ---------------------------------------------

# Where each of the Horizon plugin's files goes in Horizon's
# openstack_dashboard/ (doc/source/install/index.rst).
DASHBOARD_FILES = {
    "local/enabled/_1770_project_snapshot_policies_panel.py": "local/enabled",
    "local/enabled/_1771_project_instance_snapshots.py": "local/enabled",
    "local/local_settings.d/_90_snapmanager.py": "local/local_settings.d",
    "conf/snapmanager_policy.yaml": "conf",
}

# What the plugin looks for in the source tree.
DASHBOARD_GLOBS = (
    "local/enabled/_*.py",
    "local/local_settings.d/_*.py",
    "conf/snapmanager_policy.yaml",
)


def _dashboard_tree(tmp_path, extra=()):
    files = {"snapmanager_dashboard/" + name: "" for name in DASHBOARD_FILES}
    files.update({"snapmanager_dashboard/" + name: "" for name in extra})
    return plugin_run.fake_tree(tmp_path, files)


def test_dashboard_files_go_to_horizon_before_it_collects_static(tmp_path):
    # Neither a package's __init__.py (Horizon's own would be replaced)
    # nor a file that does not match _*.py is an enabled file.
    tree, env = _dashboard_tree(
        tmp_path, ("local/enabled/__init__.py", "local/enabled/README")
    )
    run = plugin_run.run(tmp_path, ALL_IN_ONE, **env)
    expected = [
        (
            "stack post-config",
            (
                str(tree / "snapmanager_dashboard" / name),
                "%s/%s/" % (run.horizon_dir, target),
            ),
        )
        for name, target in DASHBOARD_FILES.items()
    ]
    assert [(c.phase, c.args) for c in run.named("cp")] == expected
    removed = [c.args for c in run.named("rm", "clean")]
    for name, target in DASHBOARD_FILES.items():
        basename = name.rsplit("/", 1)[1]
        assert ("-f", "%s/%s/%s" % (run.horizon_dir, target, basename)) in (
            removed
        )
    assert not [args for args in removed if args[-1].endswith("__init__.py")]


def test_no_dashboard_files_without_horizon(tmp_path):
    _, env = _dashboard_tree(tmp_path)
    run = plugin_run.run(tmp_path, "key,mysql,rabbit,n-api,n-cpu", **env)
    assert run.named("cp") == []
    assert not [c for c in run.named("rm") if "/horizon/" in c.args[-1]]


def test_dashboard_files_of_the_tree_are_copied(all_in_one):
    dashboard = TOP / "snapmanager_dashboard"
    expected = [
        path
        for pattern in DASHBOARD_GLOBS
        for path in sorted(dashboard.glob(pattern))
        if not path.name.startswith("__")
    ]
    copied = [pathlib.Path(c.args[0]) for c in all_in_one.named("cp")]
    assert copied == expected
    # The tree's own files are where the fake tree above puts them.
    for path in copied:
        relative = path.relative_to(dashboard)
        assert str(relative.parent) in DASHBOARD_FILES.values()


# -- what the plugin refers to exists ----------------------------------------


def test_every_file_of_the_tree_the_plugin_uses_exists(all_in_one):
    used = set()
    for call in all_in_one.calls:
        for arg in call.args:
            for word in re.split(r"[\s=]+", arg):
                word = word.removesuffix("[dashboard]")
                if word.startswith(str(TOP)):
                    used.add(word)
    assert str(TOP) in used
    for path in used:
        assert (TOP / path).exists(), path
    assert (TOP / "upper-constraints.txt").is_file()
    # DevStack installs a plugin's packages from files/debs/<plugin name>.
    debs = (DEVSTACK / "files" / "debs" / "snapmanager").read_text()
    assert "libvirt-dev" in debs


def test_commands_and_modules_exist_in_the_package(all_in_one):
    setup = configparser.ConfigParser()
    setup.read(TOP / "setup.cfg")
    scripts = {
        line.split("=")[0].strip()
        for line in setup["entry_points"]["console_scripts"].splitlines()
        if line.strip()
    }
    run = all_in_one
    used = {c.name.rsplit("/", 1)[1] for c in run.calls if "/" in c.name}
    used |= {
        call.args[1].split()[0].rsplit("/", 1)[1]
        for call in run.named("run_process")
    }
    assert used - scripts == {"oslo-config-generator", "uwsgi"}
    assert (
        "snapmanager = snapmanager_nova.conf.opts:list_opts"
        in (setup["entry_points"]["oslo.config.opts"])
    )
    (uwsgi,) = run.named("write_uwsgi_config")
    module, attribute = uwsgi.args[1].split(":")
    source = TOP.joinpath(*module.split(".")).with_suffix(".py").read_text()
    assert re.search(r"^%s = " % attribute, source, re.MULTILINE)


# -- settings and defaults ---------------------------------------------------


def test_every_setting_has_an_overridable_default():
    assignments = [
        line
        for line in (DEVSTACK / "settings").read_text().splitlines()
        if re.match(r"[A-Z_]+=", line)
    ]
    assert len(assignments) > 15
    for line in assignments:
        name = line.split("=", 1)[0]
        assert line.startswith("%s=${%s:-" % (name, name)), line


def test_no_substring_tests_on_enabled_services():
    for name in ("plugin.sh", "settings"):
        assert "ENABLED_SERVICES" not in (DEVSTACK / name).read_text()


@pytest.mark.parametrize(
    ("preset", "expected"), [(None, "both"), ("versioned", "versioned")]
)
def test_nova_sends_versioned_notifications(preset, expected):
    env = {"PATH": "/usr/bin:/bin"}
    if preset:
        env["NOVA_NOTIFICATION_FORMAT"] = preset
    out = subprocess.run(
        [
            "/bin/bash",
            "-c",
            'source "$1"; echo "$NOVA_NOTIFICATION_FORMAT"',
            "-",
            str(DEVSTACK / "override-defaults"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert out.strip() == expected


# -- the same options as the quickstart --------------------------------------

# What Stack._render sets that the plugin leaves at its default (said in
# plugin.sh's configure_snapmanager), and what tools/testenv/write_config.py
# adds under the quickstart's overlay.
NOT_IN_DEVSTACK = {
    ("DEFAULT", "report_interval"),
    ("conductor", "tick_interval"),
    ("conductor", "notification_pool"),
    # The quickstart's demo policy snapshots every minute; a DevStack
    # cloud keeps the default minimum interval.
    ("quota", "min_schedule_interval"),
}
WRITE_CONFIG = {("database", "connection"), ("compute", "libvirt_uri")}


def _minicloud_config():
    path = TOP / "tools" / "minicloud" / "config.py"
    spec = importlib.util.spec_from_file_location("_devstack_test_cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render_options():
    """(section, option) of every option Stack._render writes."""
    tree = ast.parse((TOP / "tools" / "quickstart" / "stack.py").read_text())
    (render,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "_render"
    ]
    config = _minicloud_config()
    sections = {}
    for node in ast.walk(render):
        if not isinstance(node, ast.Assign):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "overlay":
            items = zip(node.value.keys, node.value.values, strict=True)
            for key, value in items:
                sections[key.value] = value
        elif (
            isinstance(target, ast.Subscript)
            and getattr(target.value, "id", None) == "overlay"
        ):
            sections[target.slice.value] = node.value
    options = set()
    for section, value in sections.items():
        if isinstance(value, ast.Dict):
            keys = [key.value for key in value.keys]
        else:
            # config._authtoken(user) or
            # dict(config._service_auth(user), extra=...)
            is_dict = getattr(value.func, "id", None) == "dict"
            call = value.args[0] if is_dict else value
            keys = list(getattr(config, call.func.attr)("user"))
            keys += [keyword.arg for keyword in value.keywords]
        options |= {(section, key) for key in keys}
    return options


def test_options_match_the_quickstarts_render(tmp_path):
    run = _configure_with_ceph(tmp_path, "True")
    render = _render_options()
    assert ("nova", "username") in render
    assert ("rbd", "pool") in render
    plugin = set(run.conf())
    # DevStack's own helpers write these two.
    assert run.named("iniset_rpc_backend")
    plugin.add(("DEFAULT", "transport_url"))
    assert run.named("configure_keystone_authtoken_middleware")
    plugin |= {o for o in render if o[0] == "keystone_authtoken"}
    assert plugin == (render - NOT_IN_DEVSTACK) | WRITE_CONFIG


# -- the install guide's local.conf samples -----------------------------------

SAMPLES = TOP / "doc" / "source" / "install" / "samples"


@pytest.mark.parametrize("sample", ["local.conf", "local.conf.compute"])
def test_samples_enable_the_plugin(sample):
    lines = (SAMPLES / sample).read_text().splitlines()
    assert lines[0] == "[[local|localrc]]"
    assert any(line.startswith("enable_plugin snapmanager ") for line in lines)


def test_compute_sample_runs_only_the_agent(tmp_path):
    (services,) = [
        line.split("=", 1)[1]
        for line in (SAMPLES / "local.conf.compute").read_text().splitlines()
        if line.startswith("ENABLED_SERVICES=")
    ]
    run = plugin_run.run(tmp_path, services)
    assert run.returncode == 0, run.stderr
    assert run.started() == ["snapmanager-compute"]
