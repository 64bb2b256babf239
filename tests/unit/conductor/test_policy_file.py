"""The operators' policy file: parsing, resolving, precedence, reloading
and applying (the last on SQLite; MariaDB and the clock's queries are in
tests/functional/conductor/test_policy_file.py)."""

import datetime
import itertools
import logging
import pathlib
import textwrap

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.conductor import policy_file
from snapmanager_nova.db import api as db_api
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

CONF = sm_conf.CONF
SAMPLE = (
    pathlib.Path(__file__).parents[3]
    / "etc"
    / "snapmanager"
    / "snap_sched.yaml.sample"
)
UUID = "3f1e7c52-8a0e-4c6b-9d0a-2b1f5e4c7a10"
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)


def parse(text):
    return policy_file.parse(textwrap.dedent(text))


def specs(schedules):
    return [(s.spec.text, s.spec.timezone, s.retention) for s in schedules]


# Parsing


def test_the_sample_file_is_valid():
    policy = policy_file.parse(SAMPLE.read_text())
    # NetApp specs' canonical text leaves the default hour 0 out.
    assert specs(policy.default) == [("7", "UTC", {"keep_count": 7})]
    assert sorted(policy.servers) == [UUID, "db-primary"]
    assert specs(policy.servers["db-primary"]) == [
        (
            "24@0,6,12,18",
            "UTC",
            {"keep_count": 24, "max_age": 604800},
        )
    ]
    (project,) = policy.projects.values()
    assert specs(project) == [
        ("6@mon-fri@7,19", "UTC", {"keep_count": 6}),
        ("4@sun@3", "Europe/Berlin", {"keep_count": 4}),
    ]


def test_specs_are_canonical_and_uuids_lower_case():
    policy = parse(
        f"""
        servers:
          {UUID.upper()}:
            - " 7 @ Wed, Mon, Tue @ 18, 6 "
            - spec: Daily@2:30
              enabled: false
        """
    )
    (schedules,) = policy.servers.values()
    assert list(policy.servers) == [UUID]
    assert [s.spec.text for s in schedules] == [
        "7@mon-wed@6,18",
        "daily@02:30",
    ]
    assert [s.enabled for s in schedules] == [True, False]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "---\n"])
def test_an_empty_file_is_no_policy(text):
    assert policy_file.parse(text) == policy_file.EMPTY


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "default: [7@0\n",
            "line 2, column 1: not valid YAML",
        ),
        (
            "servers:\n  web: [7@0]\n  web: [6@0]\n",
            "line 3, column 3: not valid YAML: key 'web' is given twice",
        ),
        ("- 7@0\n", '(file): ["7@0"] is not of type object'),
        (
            "defaults: [7@0]\n",
            "defaults: unknown key (known: default, projects, servers)",
        ),
        (
            "projects:\n  12345: [7@0]\n",
            "projects: key 12345 is not a string; quote it in the file",
        ),
        (
            # YAML 1.1 reads yes as true.
            "projects:\n  yes: [7@0]\n",
            "projects: key True is not a string",
        ),
        (
            "1: [7@0]\nx: [7@0]\n",
            "(file): key 1 is not a string; quote it in the file",
        ),
        ("default: 7@0\n", "default: '7@0' is not of type array"),
        ("default: []\n", "default: needs at least 1 item(s)"),
        (
            "servers:\n  web: []\n",
            "servers.web: needs at least 1 item(s)",
        ),
        (
            "default: [" + ", ".join(["7@0"] * 21) + "]\n",
            "default: has more than 20 items",
        ),
        (
            "servers:\n  web: [hourly@3]\n",
            "servers.web[0].spec: 'hourly@3' is not a known schedule",
        ),
        (
            "servers:\n  web:\n    - 7@0\n    - daily@25:00\n",
            "servers.web[1].spec: time: '25:00' is not HH:MM",
        ),
        (
            "projects:\n  p1:\n    - {spec: 7@0, timezone: Mars/Base}\n",
            "projects.p1[0].timezone: 'Mars/Base' is not an IANA timezone",
        ),
        (
            "default:\n  - {spec: daily@02:00, retention: {max_age: 7x}}\n",
            "default[0].retention.max_age: '7x' is not seconds",
        ),
        (
            "default:\n  - {spec: 7@0, retention: {keep_count: 3}}\n",
            "default[0].retention.keep_count: 3 disagrees with the count 7",
        ),
        (
            "default:\n  - {spec: 7@0, retention: {keep: 3}}\n",
            "default[0].retention.keep: unknown key (known: daily, hourly, "
            "keep_count, keep_last, max_age, monthly, weekly, yearly)",
        ),
        (
            "default:\n  - {spec: 7@0, every: day}\n",
            "default[0].every: unknown key (known: enabled, retention, "
            "spec, timezone)",
        ),
        ("default:\n  - {timezone: UTC}\n", "default[0].spec: is required"),
        ("default:\n  - 7\n", "default[0]: 7 is not of type object"),
        (
            "default:\n  - {spec: 7@0, enabled: maybe}\n",
            "default[0].enabled: 'maybe' is not of type boolean",
        ),
        (
            "default:\n  - 7@0\n  - '7 @ 0'\n",
            "default[1]: spec '7' in UTC is already default[0]",
        ),
        (
            f"servers:\n  {UUID}: [7@0]\n  {UUID.upper()}: [6@0]\n",
            f"servers.{UUID.upper()}: server {UUID} is given twice",
        ),
    ],
)
def test_errors_name_the_entry_and_field(text, error):
    with pytest.raises(policy_file.PolicyFileError) as caught:
        policy_file.parse(text)
    assert str(caught.value).startswith(error), str(caught.value)


# Resolving entries to servers and projects


def schedules(*spec_texts):
    return policy_file.parse(
        "default: [" + ", ".join(spec_texts) + "]"
    ).default


A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"
C = "00000000-0000-4000-8000-00000000000c"


def test_resolve_servers_by_uuid_and_by_unique_name():
    policy = policy_file.OperatorPolicy(
        servers={A: schedules("1@0"), "web": schedules("2@0")}
    )
    desired, problems = policy_file.resolve(policy, {A}, {"web": [B]}, set())
    assert desired == {
        ("server", A): schedules("1@0"),
        ("server", B): schedules("2@0"),
    }
    assert problems == []


def test_resolve_reports_what_names_no_server_or_several():
    policy = policy_file.OperatorPolicy(
        servers={
            A: schedules("1@0"),
            "ghost": schedules("2@0"),
            "twin": schedules("3@0"),
        }
    )
    desired, problems = policy_file.resolve(
        policy, set(), {"twin": [C, B]}, set()
    )
    assert desired == {}
    assert problems == [
        f"servers.{A}: no server with this UUID is known to Snapmanager",
        "servers.ghost: no server of this name is known",
        f"servers.twin: 2 servers have this name ({B}, {C}); name one by "
        "its UUID",
    ]


def test_a_uuid_entry_wins_over_a_name_entry_of_the_same_server():
    policy = policy_file.OperatorPolicy(
        servers={A: schedules("1@0"), "web": schedules("2@0")}
    )
    desired, problems = policy_file.resolve(policy, {A}, {"web": [A]}, set())
    assert desired == {("server", A): schedules("1@0")}
    assert problems == [
        f"servers.web: server {A} has an entry by its UUID, which is used"
    ]


def test_project_entries_replace_the_general_default():
    policy = policy_file.OperatorPolicy(
        default=schedules("7@0"), projects={"p1": schedules("6@0")}
    )
    desired, _ = policy_file.resolve(policy, set(), {}, {"p1", "p2", "p3"})
    assert desired == {
        ("project", "p1"): schedules("6@0"),
        ("project", "p2"): schedules("7@0"),
        ("project", "p3"): schedules("7@0"),
    }
    # Without a general default, only the named projects.
    no_default = policy_file.OperatorPolicy(projects={"p9": schedules("6@0")})
    desired, _ = policy_file.resolve(no_default, set(), {}, {"p1"})
    assert desired == {("project", "p9"): schedules("6@0")}


# Precedence


def independent_rule(enabled, tenant_own, operator_own, tenant_default, op):
    """The rule restated as a ranking: the most specific level with a
    schedule that counts wins, the tenant before the operator."""
    levels = [
        (policy_file.SERVER_TENANT, enabled and tenant_own),
        (policy_file.SERVER_OPERATOR, operator_own),
        (policy_file.PROJECT_TENANT, enabled and tenant_default),
        (policy_file.PROJECT_OPERATOR, op),
    ]
    return next((level for level, counts in levels if counts), None)


@pytest.mark.parametrize(
    "facts", list(itertools.product([False, True], repeat=5))
)
def test_precedence_every_combination(facts):
    assert policy_file.deciding_level(*facts) == independent_rule(*facts)


def test_precedence_examples():
    level = policy_file.deciding_level
    # A tenant's policy for their server beats every operator entry.
    assert level(True, True, True, True, True) == "server, tenant"
    # The operator's entry for a server beats the tenant's project default.
    assert level(True, False, True, True, True) == "server, operator"
    # The tenant's project default beats the operator's for the project.
    assert level(True, False, False, True, True) == "project, tenant"
    # A server whose tenant switched its policy off still gets the
    # operator's: the switch is for the tenant's own schedules.
    assert level(False, True, False, True, True) == "project, operator"
    assert level(False, False, False, False, False) is None


# Reloading


@pytest.fixture
def policy_path(tmp_path):
    path = tmp_path / "snap_sched.yaml"
    CONF.set_override("policy_file", str(path), group="conductor")
    yield path
    CONF.clear_override("policy_file", group="conductor")


def test_load_rereads_only_a_changed_file(policy_path):
    sync = policy_file.PolicyFileSync()
    policy_path.write_text("default: [7@0]\n")
    first = sync.load()
    assert specs(first.default)[0][0] == "7"
    assert sync.load() is first  # unchanged: not parsed again
    policy_path.write_text("default: [6@0]\n")
    assert specs(sync.load().default)[0][0] == "6"


def test_a_refused_file_leaves_the_previous_policy_in_force(
    policy_path, caplog
):
    sync = policy_file.PolicyFileSync()
    policy_path.write_text("default: [7@0]\n")
    good = sync.load()
    policy_path.write_text("default: [7@0]\nservers: {web: [hourly@3]}\n")
    with caplog.at_level(logging.ERROR):
        assert sync.load() is good
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "servers.web[0].spec: 'hourly@3'" in message
    assert "the previous policy stays in force" in message
    # Logged once, not on every pass.
    caplog.clear()
    assert sync.load() is good
    assert caplog.records == []
    policy_path.unlink()
    with caplog.at_level(logging.ERROR):
        assert sync.load() is good
    assert "cannot be read" in caplog.records[0].getMessage()


def test_a_refused_file_at_start_changes_nothing(policy_path, ctx):
    policy_path.write_bytes(b"default: [\xff]\n")
    assert policy_file.PolicyFileSync().run(ctx) is None
    policy_path.write_text("default: [nonsense]\n")
    assert policy_file.PolicyFileSync().run(ctx) is None


def test_no_policy_file_is_no_operator_policy():
    assert CONF.conductor.policy_file is None
    assert policy_file.PolicyFileSync().load() == policy_file.EMPTY


# Applying (SQLite)


def operator_rows(ctx):
    return sorted(
        (
            policy_file.owner_of(row),
            row.spec,
            row.timezone,
            row.retention,
            row.enabled,
        )
        for row in db_api.schedule_list_by_source(ctx, "operator")
    )


def apply(ctx, text):
    return policy_file.PolicyFileSync(now=lambda: NOW).apply(
        ctx, policy_file.parse(textwrap.dedent(text))
    )


@pytest.fixture
def servers(ctx):
    made = {}
    for name, project in (("web", "p1"), ("db", "p1"), ("app", "p2")):
        row = db_fixtures.make_instance(ctx, project_id=project)
        db_api.instance_update_inventory(ctx, row.uuid, {"name": name}, NOW)
        made[name] = row
    return made


def test_apply_writes_operator_rows_and_leaves_api_ones(ctx, servers):
    tenant = db_fixtures.make_schedule(ctx, servers["db"], spec="daily@03:00")
    changed = apply(
        ctx,
        f"""
        default: [7@0]
        projects:
          p2: [6@0]
        servers:
          web: ["24@0,12"]
          {servers["db"].uuid}: [2@sun]
        """,
    )
    assert sorted(changed) == sorted(
        [
            ("project", "p1"),
            ("project", "p2"),
            ("server", servers["web"].uuid),
            ("server", servers["db"].uuid),
        ]
    )
    assert operator_rows(ctx) == sorted(
        [
            (("project", "p1"), "7", "UTC", {"keep_count": 7}, True),
            (("project", "p2"), "6", "UTC", {"keep_count": 6}, True),
            (
                ("server", servers["web"].uuid),
                "24@0,12",
                "UTC",
                {"keep_count": 24},
                True,
            ),
            (
                ("server", servers["db"].uuid),
                "2@sun",
                "UTC",
                {"keep_count": 2},
                True,
            ),
        ]
    )
    for row in db_api.schedule_list_by_source(ctx, "operator"):
        assert row.next_run_at > NOW
    assert db_api.schedule_get(ctx, tenant.id).source == "api"
    # The same policy again writes nothing.
    assert (
        apply(
            ctx,
            "default: [7@0]\nprojects: {p2: [6@0]}\n"
            f"servers: {{web: ['24@0,12'], {servers['db'].uuid}: "
            "['2@sun']}\n",
        )
        == []
    )


def test_a_changed_policy_rewrites_only_what_changed(ctx, servers):
    apply(ctx, "default: [7@0]\nservers: {web: [24@0]}\n")
    kept = {
        row.id
        for row in db_api.schedule_list_by_source(ctx, "operator")
        if row.instance_uuid is None
    }
    schedule = db_api.schedule_list(ctx, instance_uuid=servers["web"].uuid)[0]
    snapshot = db_fixtures.make_snapshot(
        ctx, servers["web"], schedule, snapshot_index=1
    )
    changed = apply(ctx, "default: [7@0]\nservers: {app: [24@0]}\n")
    assert sorted(changed) == sorted(
        [("server", servers["web"].uuid), ("server", servers["app"].uuid)]
    )
    # The defaults' rows are the same rows (their snapshots keep them).
    assert kept <= {
        row.id for row in db_api.schedule_list_by_source(ctx, "operator")
    }
    # The dropped entry's snapshots stay, unscheduled (roll-off's then).
    assert db_api.snapshot_get(ctx, snapshot.id).schedule_id is None
    # A retention change keeps the row.
    (app_row,) = db_api.schedule_list(ctx, instance_uuid=servers["app"].uuid)
    apply(
        ctx,
        "default: [7@0]\nservers:\n  app:\n"
        "    - {spec: 24@0, retention: {max_age: 1d}}\n",
    )
    (again,) = db_api.schedule_list(ctx, instance_uuid=servers["app"].uuid)
    assert again.id == app_row.id
    assert again.retention == {"keep_count": 24, "max_age": 86400}


def test_an_empty_policy_removes_every_operator_row(ctx, servers):
    tenant = db_fixtures.make_schedule(ctx, servers["web"])
    apply(ctx, "default: [7@0]\nservers: {db: [24@0]}\n")
    apply(ctx, "")
    assert operator_rows(ctx) == []
    assert [row.id for row in db_api.schedule_list(ctx)] == [tenant.id]


def test_deleted_and_unknown_servers_get_no_rows(ctx, servers):
    db_api.instance_mark_deleted(ctx, servers["web"].uuid, NOW)
    apply(ctx, f"servers: {{web: [24@0], {servers['web'].uuid}: [2@0]}}\n")
    assert operator_rows(ctx) == []


def test_problems_are_logged_when_they_change(ctx, servers, caplog):
    sync = policy_file.PolicyFileSync(now=lambda: NOW)
    policy = policy_file.parse("servers: {ghost: [24@0]}\n")
    with caplog.at_level(logging.WARNING):
        sync.apply(ctx, policy)
        sync.apply(ctx, policy)
    assert [r.getMessage() for r in caplog.records] == [
        "Policy file entry not applied: servers.ghost: no server of this "
        "name is known"
    ]
