"""Options of the [database] group, owned by oslo.db.

Snapmanager keeps its own database, never Nova's. There is deliberately
no default ``connection``: a service that silently wrote to a local SQLite
file would lose its state on the next host, so an unset connection is an
error at the first query.
"""

from oslo_db import options as db_options


def register_opts(conf):
    conf.register_opts(db_options.database_opts, group="database")


def list_opts():
    # oslo.db publishes these under its own namespace too; listing them here
    # puts the [database] section in Snapmanager's sample beside ours.
    return {"database": db_options.database_opts}
