"""Write a snapmanager.conf for the running test environment.

Usage: write_config.py ENV_JSON OUTPUT_CONF

Creates the `snapmanager` database on the environment's MariaDB (if it is
not there yet) and points every option group at the environment's
components. Run with the project venv (it needs SQLAlchemy and PyMySQL).
"""

import configparser
import json
import pathlib
import sys

import sqlalchemy as sa

DATABASE = "snapmanager"


def main(env_json, output):
    env = json.loads(pathlib.Path(env_json).read_text())
    server_url = sa.engine.make_url(env["mariadb"]["url"])
    engine = sa.create_engine(server_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE DATABASE IF NOT EXISTS {DATABASE} "
                "CHARACTER SET utf8mb4"
            )
        )
    engine.dispose()

    state = pathlib.Path(output).parent
    conf = configparser.ConfigParser(interpolation=None)
    conf["DEFAULT"] = {
        "state_path": str(state / "snapmanager"),
        "transport_url": env["rabbitmq"]["transport_url"],
    }
    conf["database"] = {
        "connection": server_url.set(database=DATABASE).render_as_string(
            hide_password=False
        )
    }
    conf["compute"] = {"libvirt_uri": env["libvirt"]["uri"]}
    conf["rbd"] = {
        "ceph_conf": env["ceph"]["conf"],
        "pool": env["ceph"]["pool"],
    }
    with open(output, "w") as out:
        conf.write(out)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(*sys.argv[1:])
