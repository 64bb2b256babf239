"""Hosts Nova retired: their agents are forgotten, so the snapshots
stored there show unavailable (conductor/holders.py RetiredHosts)."""

import datetime
import types

from keystoneauth1 import exceptions as ks_exc

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.conductor import holders
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.conductor.test_restore import FakeLazyCompute
from tests.unit.db import conftest as db_conftest

engine = db_conftest.engine
ctx = db_conftest.ctx

CONF = sm_conf.CONF
AGENT = db_api.COMPUTE_BINARY


class Nova:
    def __init__(self, *hosts, fail=False):
        self.hosts = hosts
        self.fail = fail
        self.asked = []

    def services(self, binary):
        self.asked.append(binary)
        if self.fail:
            raise ks_exc.ConnectFailure("Nova is down")
        return [types.SimpleNamespace(host=host) for host in self.hosts]


def later(seconds):
    """A clock ``seconds`` past the real one (heartbeats use the real)."""
    return lambda: models.utcnow() + datetime.timedelta(seconds=seconds)


def agents(ctx, *hosts):
    for host in hosts:
        db_api.service_heartbeat(ctx, AGENT, host)


def test_a_silent_agent_of_a_host_nova_retired_is_forgotten(ctx):
    agents(ctx, "compute-1", "compute-2", "compute-3")
    db_api.service_heartbeat(ctx, "snapmanager-conductor", "controller")
    nova = Nova("compute-1")
    silent = later(CONF.conductor.service_down_time + 60)
    # compute-1 is Nova's: kept however long its agent is down.
    assert holders.RetiredHosts(FakeLazyCompute(nova), now=silent).run(
        ctx
    ) == [
        "compute-2",
        "compute-3",
    ]
    assert nova.asked == ["nova-compute"]
    left = {(s.binary, s.host) for s in db_api.service_list(ctx)}
    assert left == {
        (AGENT, "compute-1"),
        ("snapmanager-conductor", "controller"),
    }
    assert db_api.snapshot_holders_gone(ctx, {"compute-1", "compute-2"}) == {
        "compute-2"
    }


def test_an_agent_still_reporting_is_kept_whatever_nova_says(ctx):
    agents(ctx, "compute-2")
    assert (
        holders.RetiredHosts(FakeLazyCompute(Nova()), now=later(0)).run(ctx)
        == []
    )
    assert [s.host for s in db_api.service_list(ctx, binary=AGENT)] == [
        "compute-2"
    ]


def test_nothing_is_forgotten_when_nova_cannot_be_asked(ctx):
    agents(ctx, "compute-2")
    silent = later(CONF.conductor.service_down_time + 60)
    retired = holders.RetiredHosts(
        FakeLazyCompute(Nova(fail=True)), now=silent
    )
    assert retired.run(ctx) == []
    assert db_api.service_list(ctx, binary=AGENT)
