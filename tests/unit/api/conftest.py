"""The API application on SQLite, with a fake Nova and recorded casts."""

import datetime
import json

import pytest
import sqlalchemy as sa
import webob

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import policy
from snapmanager_nova.api import app
from snapmanager_nova.db import models
from tests.unit.api import fakes
from tests.unit.db import fixtures as db_fixtures

CONF = sm_conf.CONF

# Saturday before Berlin's spring-forward night: daily@02:30 there runs at
# 03:00 CEST (01:00 UTC) on Sunday, as doc/source/schedules.rst says.
NOW = datetime.datetime(2026, 3, 28, 12, 0, tzinfo=datetime.UTC)


class ConfigOverrides:
    """Overrides of the global CONF for one test: ``config(**kw)`` like
    oslo.config's Config fixture, undone by :meth:`clean_up`.

    Not that fixture: its clean-up, ``CONF.reset()``, also drops every
    ``set_default`` made in the process, oslo.privsep's capabilities of
    Snapmanager's privsep context among them, so a daemon forked later in
    the same run (tests/functional/compute) kept no capability and every
    chown it made failed with EPERM.
    """

    def __init__(self, conf):
        self.conf = conf
        self._overridden = []

    def config(self, **kw):
        group = kw.pop("group", None)
        for name, value in kw.items():
            self.conf.set_override(name, value, group)
            self._overridden.append((name, group))

    def clean_up(self):
        for name, group in reversed(self._overridden):
            self.conf.clear_override(name, group)
        self.conf.clear()


@pytest.fixture
def conf():
    CONF([], project="snapmanager", default_config_files=[])
    overrides = ConfigOverrides(CONF)
    overrides.config(auth_strategy="noauth", group="api")
    policy.reset()
    yield overrides
    policy.reset()
    overrides.clean_up()


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'snapmanager.sqlite'}"
    with db_fixtures.database(url, create_schema=True) as engine:
        yield engine


@pytest.fixture
def ctx(engine):
    """An admin context for reading and seeding the database directly."""
    return sm_context.get_admin_context()


@pytest.fixture
def nova():
    return fakes.FakeNovaServers()


@pytest.fixture
def compute():
    return fakes.RecordingComputeAPI()


class ApiClient:
    """Requests to the WSGI application in this process, as a tenant."""

    def __init__(self, application):
        self.application = application

    def request(
        self,
        method,
        path,
        who=fakes.MEMBER,
        json_body=None,
        body=None,
        content_type="application/json",
        headers=None,
    ):
        req = webob.Request.blank(path, method=method)
        for name, value in who.items():
            req.headers[name] = value
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if body is not None:
            req.body = body
            if content_type is not None:
                req.content_type = content_type
        for name, value in (headers or {}).items():
            req.headers[name] = value
        return req.get_response(self.application)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def put(self, path, json_body=None, **kwargs):
        return self.request("PUT", path, json_body=json_body, **kwargs)

    def post(self, path, json_body=None, **kwargs):
        return self.request("POST", path, json_body=json_body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def application(conf, engine, nova, compute):
    return app.create_app(
        CONF,
        nova_servers=nova,
        compute_api=lambda: compute,
        now=lambda: NOW,
    )


@pytest.fixture
def api(application):
    return ApiClient(application)


def dump_database(engine):
    """Every row of every table, to compare before and after a request."""
    with engine.connect() as conn:
        return {
            table.name: sorted(
                (
                    tuple(map(repr, row))
                    for row in conn.execute(sa.select(table))
                ),
            )
            for table in models.Base.metadata.sorted_tables
        }


@pytest.fixture
def unchanged(engine):
    """Use as ``with unchanged(): ...`` to assert nothing was written."""

    class _Unchanged:
        def __enter__(self):
            self.before = dump_database(engine)

        def __exit__(self, *exc):
            if exc[0] is None:
                assert dump_database(engine) == self.before

    return _Unchanged
