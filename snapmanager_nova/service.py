"""Process set-up shared by every snapmanager-* command."""

import sys

from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf

CONF = sm_conf.CONF


def prepare(argv=None, default_config_files=None):
    """Parse the command line and config files and set up logging.

    ``--config-file`` and ``--config-dir`` come from oslo.config; without
    them /etc/snapmanager/snapmanager.conf is read when it exists.
    """
    logging.register_options(CONF)
    # alembic announces its plugins and context at INFO on every command;
    # that drowns the one line `snapmanager-manage db version` prints.
    logging.set_defaults(
        default_log_levels=logging.get_default_log_levels() + ["alembic=WARN"]
    )
    argv = sys.argv[1:] if argv is None else argv
    CONF(
        argv,
        project="snapmanager",
        default_config_files=default_config_files,
    )
    logging.setup(CONF, "snapmanager")


def not_yet_available(binary, role, argv=None):
    """Entry point body of a service that this release does not run yet.

    The command still parses its options, so ``--help`` and
    ``--config-file`` behave as they will, but it says plainly that it has
    nothing to run and exits non-zero rather than pretending to serve.
    """
    prepare(argv)
    print(
        f"{binary}: the {role} is not part of this release yet; "
        "nothing was started.",
        file=sys.stderr,
    )
    return 1
