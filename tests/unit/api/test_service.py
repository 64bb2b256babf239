"""The two ways of serving the application: snapmanager-api and WSGI."""

import json
import os
import pathlib
import subprocess
import sys
import urllib.request

from snapmanager_nova.api import app
from snapmanager_nova.cmd import api as cmd_api


def test_wsgi_service_serves_and_stops(conf, engine, nova):
    application = app.create_app(conf.conf, nova_servers=nova)
    service = cmd_api.WSGIService(application, "127.0.0.1", 0)
    service.start()
    try:
        port = service._server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200
            assert json.load(resp)["versions"][0]["id"] == "v1"
            assert resp.headers["X-OpenStack-Request-Id"].startswith("req-")
    finally:
        service.stop()


def test_wsgi_module_reads_config_from_environment(tmp_path):
    """uwsgi imports the module; its own argv must not be parsed."""
    config = tmp_path / "snapmanager.conf"
    config.write_text(
        "[api]\nauth_strategy = noauth\nmax_limit = 7\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'db.sqlite'}\n"
    )
    code = (
        "import sys\n"
        "sys.argv = ['uwsgi', '--http-socket', ':8799', '--module', 'x']\n"
        "from snapmanager_nova.wsgi import api\n"
        "from snapmanager_nova import conf\n"
        "assert callable(api.application)\n"
        "print(conf.CONF.api.max_limit, conf.CONF.api.auth_strategy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, SNAPMANAGER_CONFIG_FILES=str(config)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=pathlib.Path(__file__).parents[3],
    )
    assert result.returncode == 0, result.stderr
    # oslo.log writes to stdout without a log file: the answer is last.
    assert result.stdout.splitlines()[-1] == "7 noauth"
