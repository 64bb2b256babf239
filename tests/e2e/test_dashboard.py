"""The Horizon plugin in a real browser, on the real stack.

Horizon runs as the quickstart runs it (tools/quickstart/horizon.py),
against the mini-cloud's Keystone (its real login form), real Nova, and
Snapmanager's real API, conductor and compute agent. Chromium is driven
through Selenium (tests/e2e/dashboard_browser.py). Every page looked at
is saved in the screenshot directory the run names at its start.

- demo sets "daily at 02:00, keep 7" from the Instances page and the
  API has it; takes a snapshot now and sees it become available;
  restores from it and follows the progress to the end; the server is
  ACTIVE again.
- demo-reader sees the server, its policy and its snapshots, and no
  button that writes.
- other does not see demo's server, and demo's snapshot, operation and
  server URLs of the plugin are Horizon's not-found page.
"""

import importlib
import tempfile
import time

import pytest

from tests.e2e import dashboard_browser
from tests.e2e import helpers
from tests.fixtures import minicloud as minicloud_fixtures
from tests.fixtures import snapmanager_cloud as snapmanager_fixtures

TAB = "?tab=instance_details__snapmanager_snapshots"
# Restores of tiny disks under TCG: a lock, a stop, a restore and a start.
RESTORE_WAIT = 300
NOT_FOUND_TITLE = "Page Not Found"


@pytest.fixture(scope="module")
def horizon(snapmanager_cloud, request):
    """Horizon on the stack, as `python3 tools/quickstart up` runs it."""
    module = importlib.import_module(
        snapmanager_fixtures.MODULE_NAME + ".horizon"
    )
    server = module.Horizon()
    was_up = all(p["running"] for p in server.status()["processes"].values())
    try:
        info = server.up(snapmanager_cloud.minicloud.info)
    except module.minicloud.MiniCloudError as exc:
        pytest.fail("Horizon did not come up: %s" % exc, pytrace=False)
    yield info
    if not was_up and not minicloud_fixtures.keep_running():
        server.down()


@pytest.fixture(scope="module")
def shots(request):
    """The run's screenshot directory, named in the test output (past
    pytest's capture, so it shows whether the tests pass or fail)."""
    path = tempfile.mkdtemp(prefix="snapmanager-dashboard-shots-")
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    line = "dashboard screenshots: %s" % path
    if reporter is None or capture is None:
        print(line)
    else:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)
    return path


@pytest.fixture(scope="module")
def demo_server(snapmanager_cloud):
    return snapmanager_cloud.create_server("demo", "dashboard")


@pytest.fixture
def browser(horizon, shots, request):
    browsers = []

    def start(user):
        browser = dashboard_browser.Browser(horizon["url"], shots, user)
        browsers.append(browser)
        browser.login(user, request.getfixturevalue("minicloud").password)
        return browser

    yield start
    for browser in browsers:
        browser.close()


def _wait_api(what, check, timeout=helpers.WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("%s: not within %ds" % (what, timeout), pytrace=False)
        time.sleep(1)


@pytest.fixture(scope="module")
def api_snapshot(snapmanager_cloud, demo_server):
    """An available snapshot of demo's server, taken through the API, for
    the tests that only look; with ``operation_id``, its operation's."""
    answer = snapmanager_cloud.request(
        "demo", "POST", "/v1/servers/%s/snapshots" % demo_server.id, json={}
    )
    assert answer.status_code == 202, answer.text
    snapshot_id = answer.json()["snapshot"]["id"]
    operation_id = answer.json()["operation"]["id"]

    def available():
        got = snapmanager_cloud.request(
            "demo", "GET", "/v1/snapshots/%s" % snapshot_id
        ).json()["snapshot"]
        assert got["status"] != "error", got
        return got["status"] == "available" and got

    snapshot = _wait_api("snapshot %s available" % snapshot_id, available)
    return dict(snapshot, operation_id=operation_id)


def _row(browser, table, object_id):
    return browser.find('#%s tr[data-object-id="%s"]' % (table, object_id))


def _open_row_menu_action(browser, table, object_id, action):
    """Click a row action, opening the row's menu first if it is there."""
    element_id = "%s__row_%s__action_%s" % (table, object_id, action)
    row = _row(browser, table, object_id)
    link = browser.find("#" + element_id)
    if not link.is_displayed():
        row.find_element("css selector", ".dropdown-toggle").click()
    browser.wait_for("#" + element_id).click()


def test_demo_sets_a_policy_takes_a_snapshot_and_restores(
    browser, snapmanager_cloud, demo_server
):
    demo = browser("demo")
    demo.open("/project/instances/", "instances")
    assert demo_server.name in demo.source

    # "Snapshot policy" from the Instances table's row menu.
    _open_row_menu_action(
        demo, "instances", demo_server.id, "snapmanager_policy"
    )
    modal = demo.wait_for("#snapmanager_policy_modal")
    demo.shot("policy form")
    assert "Snapshots are off for this server" in modal.text
    time_field = demo.find("#id_time")
    time_field.clear()
    time_field.send_keys("02:00")
    keep = demo.find("#id_keep")
    keep.clear()
    keep.send_keys("7")
    demo.submit_modal("#snapmanager_policy_modal")
    demo.shot("policy saved")
    assert any("Snapshot policy saved" in m for m in demo.messages()), (
        demo.messages()
    )

    answer = snapmanager_cloud.request(
        "demo", "GET", "/v1/servers/%s/snapshot-policy" % demo_server.id
    )
    assert answer.status_code == 200, answer.text
    (schedule,) = answer.json()["snapshot_policy"]["schedules"]
    assert schedule["spec"] == "daily@02:00"
    assert schedule["retention"]["keep_count"] == 7
    # The default timezone is the user's Horizon setting (UTC here).
    assert schedule["timezone"] == "UTC"

    # The form shows it back, with the next run.
    demo.open("/project/instances/", "instances again")
    _open_row_menu_action(
        demo, "instances", demo_server.id, "snapmanager_policy"
    )
    modal = demo.wait_for("#snapmanager_policy_modal")
    demo.wait_for(".snapmanager-next-run")
    demo.shot("policy form with the policy")
    assert "daily@02:00 (UTC)" in modal.text

    # Take a snapshot now, from the Snapshots tab. The detail page's
    # action menu has "Snapshot policy" too.
    detail = "/project/instances/%s/%s" % (demo_server.id, TAB)
    demo.open(detail, "snapshots tab")
    assert demo.find_all(
        "#instances__row_%s__action_snapmanager_policy" % demo_server.id
    )
    demo.wait_for("#snapmanager_snapshots__action_take_now").click()
    demo.submit_modal("#snapmanager_take_now_modal")
    demo.shot("snapshot requested")
    rows = demo.find_all("#snapmanager_snapshots tbody tr[data-object-id]")
    assert len(rows) == 1, demo.source
    snapshot_id = rows[0].get_attribute("data-object-id")
    demo.wait_until(
        "snapshot %s available" % snapshot_id,
        lambda: (
            "Available"
            in _row(demo, "snapmanager_snapshots", snapshot_id).text
        ),
        reload_every=15,
    )
    demo.shot("snapshot available")
    row = _row(demo, "snapmanager_snapshots", snapshot_id)
    assert "On request" in row.text

    # Restore: the confirmation says what happens, then the progress.
    _open_row_menu_action(
        demo, "snapmanager_snapshots", snapshot_id, "restore"
    )
    modal = demo.wait_for("#snapmanager_restore_modal")
    demo.shot("restore confirmation")
    warning = demo.find(".snapmanager-restore-warning").text
    for words in ("stopped", "go back to", "lost", "started again"):
        assert words in warning, warning
    demo.submit_modal("#snapmanager_restore_modal")
    assert "/snapshot_policies/operations/" in demo.driver.current_url
    demo.shot("restore progress")
    demo.wait_until(
        "the restore to end",
        lambda: (
            demo.find(".snapmanager-operation").get_attribute("data-state")
            in ("succeeded", "failed")
        ),
        timeout=RESTORE_WAIT,
    )
    demo.shot("restore ended")
    state = demo.find(".snapmanager-operation").get_attribute("data-state")
    assert state == "succeeded", demo.find(".snapmanager-operation").text

    server = helpers.wait_status(
        snapmanager_cloud.minicloud,
        snapmanager_cloud.connect("demo"),
        demo_server,
        "ACTIVE",
    )
    assert server.status == "ACTIVE"
    assert not server.is_locked

    # The panel: the server's policy, its newest good snapshot, the next
    # run, and no late mark.
    demo.open("/project/snapshot_policies/", "snapshot policies")
    row = _row(demo, "server_policies", demo_server.id).text
    assert "daily@02:00 (UTC), keep 7" in row, row
    assert "Late" not in row, row
    assert "None" not in row, row


def _write_actions(browser):
    """The plugin's write actions on the page, by element id."""
    found = []
    for action in (
        "snapmanager_policy",
        "take_now",
        "restore",
        "delete",
        "default_policy",
    ):
        found += [
            e.get_attribute("id")
            for e in browser.find_all('[id$="__action_%s"]' % action)
        ]
    return found


def test_reader_sees_everything_and_no_write_button(
    browser, demo_server, api_snapshot
):
    reader = browser("demo-reader")
    reader.open("/project/instances/", "instances")
    assert demo_server.name in reader.source
    assert _write_actions(reader) == []

    reader.open(
        "/project/instances/%s/%s" % (demo_server.id, TAB), "snapshots tab"
    )
    reader.wait_for("#snapmanager_snapshots")
    assert _row(reader, "snapmanager_snapshots", api_snapshot["id"])
    assert _write_actions(reader) == []

    reader.open("/project/snapshot_policies/", "snapshot policies")
    assert _row(reader, "server_policies", demo_server.id)
    assert _write_actions(reader) == []


def test_other_project_sees_nothing_of_demo(
    browser, demo_server, api_snapshot
):
    other = browser("other")
    other.open("/project/instances/", "instances")
    assert other.find("#instances")
    assert demo_server.name not in other.source

    other.open("/project/snapshot_policies/", "snapshot policies")
    assert demo_server.id not in other.source

    for path in (
        "/project/snapshot_policies/snapshots/%s/restore/"
        % api_snapshot["id"],
        "/project/snapshot_policies/servers/%s/snapshots/" % demo_server.id,
        "/project/snapshot_policies/servers/%s/policy/" % demo_server.id,
        "/project/snapshot_policies/servers/%s/take_now/" % demo_server.id,
        "/project/snapshot_policies/operations/%s/"
        % api_snapshot["operation_id"],
    ):
        other.open(path, "not found " + path)
        assert NOT_FOUND_TITLE in other.title, (path, other.title)
        assert api_snapshot["id"] not in other.source
