"""The notifier: built from the options, best effort, one event per change.

Sent into oslo.messaging's in-memory ``test`` driver; the real RabbitMQ
is in tests/functional/test_versioned_notifications.py.
"""

import logging

import oslo_messaging as messaging
import pytest
from oslo_config import cfg

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.conf import notifications as notifications_conf
from snapmanager_nova.notifications import notifier
from tests.unit.notifications.rows import operation_row
from tests.unit.notifications.rows import snapshot_row

CONF = sm_conf.CONF


def fresh_conf(*args):
    conf = cfg.ConfigOpts()
    notifications_conf.register_opts(conf)
    conf(list(args), project="snapmanager", default_config_files=[])
    # Registers oslo.messaging's options, as the first notifier does.
    messaging.get_notification_transport(conf, url="fake://").cleanup()
    return conf


def snapshot(status, **values):
    return snapshot_row(status=status, **values)


def test_off_builds_nothing():
    conf = fresh_conf()
    conf.set_override("enabled", False, "notifications")
    conf.set_override("transport_url", "fake://")
    assert notifier.build(conf) is None


def test_without_any_transport_url_nothing_is_sent(caplog):
    # oslo.messaging would otherwise try rabbit://localhost for ever.
    caplog.set_level(logging.WARNING)
    assert notifier.build(fresh_conf()) is None
    assert "no transport_url" in caplog.text


def test_the_driver_defaults_to_messagingv2_and_follows_oslo():
    conf = fresh_conf()
    conf.set_override("transport_url", "fake://")
    built = notifier.build(conf)
    assert built._driver_names == ["messagingv2"]
    assert built._topics == ["versioned_notifications"]
    conf.set_override("driver", ["log"], "oslo_messaging_notifications")
    conf.set_override(
        "versioned_notifications_topics", ["ops", "audit"], "notifications"
    )
    built = notifier.build(conf)
    assert built._driver_names == ["log"]
    assert built._topics == ["ops", "audit"]


def test_tests_run_with_notifications_off():
    # The autouse fixture: no test sends unless it asks to.
    assert notifier.get_notifier() is None
    assert not notifier.enabled()


def test_a_change_is_sent_with_publisher_and_priority(notifications_sent):
    ctx = sm_context.RequestContext(
        user_id="u1", project_id="proj-1", auth_token="secret"
    )
    notifier.snapshot_changed(ctx, snapshot("creating"), None)
    notifier.snapshot_changed(
        ctx, snapshot("error", error="agent says no"), "creating"
    )
    start, error = notifications_sent()
    assert start["event_type"] == "snapmanager.snapshot.create.start"
    assert start["publisher_id"] == f"snapmanager-conductor:{CONF.host}"
    assert start["priority"] == "info"
    assert start["payload"]["nova_object.data"]["snapshot_id"] == "snap-1"
    assert error["event_type"] == "snapmanager.snapshot.create.error"
    assert error["priority"] == "error"
    assert error["payload"]["nova_object.data"]["error"] == "agent says no"
    # Who asked travels along; the token does not.
    assert start["context"]["user"] == "u1"
    assert not start["context"].get("auth_token")


def test_a_change_without_an_event_sends_nothing(notifications_sent):
    ctx = sm_context.get_admin_context()
    notifier.snapshot_changed(ctx, snapshot("available"), "available")
    assert notifications_sent() == []


def test_the_api_names_itself(notifications_sent):
    notifier.default_policy_changed(
        sm_context.get_admin_context(), "delete", "proj-1"
    )
    (sent,) = notifications_sent()
    assert sent["publisher_id"] == f"snapmanager-api:{CONF.host}"
    assert sent["event_type"] == "snapmanager.default_snapshot_policy.delete"


def test_switched_off_at_runtime_nothing_is_sent(notifications_sent):
    CONF.set_override("enabled", False, "notifications")
    notifier.cleanup()
    notifier.snapshot_changed(
        sm_context.get_admin_context(), snapshot("creating"), None
    )
    assert notifications_sent() == []


def test_a_failure_to_send_never_fails_the_work(
    notifications_sent, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("bus on fire")

    monkeypatch.setattr(notifier.get_notifier(), "prepare", broken)
    notifier.snapshot_changed(
        sm_context.get_admin_context(), snapshot("creating"), None
    )
    assert "snapmanager.snapshot.create.start could not be sent" in (
        caplog.text
    )


@pytest.mark.parametrize("phase", ["start", "end", "error"])
def test_restore_events(notifications_sent, phase):
    operation = operation_row(
        state="failed" if phase == "error" else "running",
        error="Nova refused" if phase == "error" else None,
    )
    notifier.restore(sm_context.get_admin_context(), phase, operation)
    (sent,) = notifications_sent()
    assert sent["event_type"] == f"snapmanager.snapshot.restore.{phase}"
    assert sent["priority"] == ("error" if phase == "error" else "info")
