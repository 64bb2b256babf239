"""Write a snapmanager.conf for the running test environment.

Usage: write_config.py [--database NAME] [--overlay JSON] ENV_JSON OUTPUT_CONF

Creates the database (`snapmanager` unless --database names another) on
the environment's MariaDB if it is not there yet, and points every option
group at the environment's components. `--overlay` names a JSON file of
`{section: {option: value}}` written over those options: the quickstart
adds Keystone, Nova and the compute host's paths that way. Run with the
project venv (it needs SQLAlchemy and PyMySQL).
"""

import argparse
import configparser
import json
import os
import pathlib

import sqlalchemy as sa

DATABASE = "snapmanager"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_json")
    parser.add_argument("output")
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--overlay")
    args = parser.parse_args(argv)
    env = json.loads(pathlib.Path(args.env_json).read_text())
    database = args.database
    server_url = sa.engine.make_url(env["mariadb"]["url"])
    engine = sa.create_engine(server_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE DATABASE IF NOT EXISTS `{database}` "
                "CHARACTER SET utf8mb4"
            )
        )
    engine.dispose()

    state = pathlib.Path(args.output).parent
    conf = configparser.ConfigParser(interpolation=None)
    conf["DEFAULT"] = {
        "state_path": str(state / "snapmanager"),
        "transport_url": env["rabbitmq"]["transport_url"],
    }
    conf["database"] = {
        "connection": server_url.set(database=database).render_as_string(
            hide_password=False
        )
    }
    conf["compute"] = {"libvirt_uri": env["libvirt"]["uri"]}
    # env.json lists only the components that run: no Ceph, no [rbd].
    if "ceph" in env:
        conf["rbd"] = {
            "ceph_conf": env["ceph"]["conf"],
            "pool": env["ceph"]["pool"],
        }
    if args.overlay:
        overlay = json.loads(pathlib.Path(args.overlay).read_text())
        for section, options in overlay.items():
            if section != "DEFAULT" and not conf.has_section(section):
                conf.add_section(section)
            conf[section].update({k: str(v) for k, v in options.items()})
    # It holds the database's and RabbitMQ's passwords.
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        conf.write(out)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
