"""Privilege separation for the compute agent.

The agent itself runs unprivileged. The few operations that must act on
files Nova and libvirt own (reading a frozen disk layer, writing a
restored disk beside Nova's, removing an overlay libvirt created) run in
an oslo.privsep daemon that keeps only the capabilities below, the same
file-ownership capabilities Nova's own ``sys_admin_pctxt`` relies on.

Starting the daemon
    snapmanager-compute starts it at start-up (``start_daemon`` below):
    by forking when the agent already runs as root, otherwise through
    ``sudo privsep-helper`` with the agent's config files (oslo.privsep's
    default), so the daemon reads the same ``[compute]`` paths and the
    agent's user needs a sudoers entry for ``privsep-helper`` only. The
    ``[snapmanager_sys_admin]`` section of the config (oslo.privsep's own
    options: ``helper_command``, ``user``, ``group``, ``capabilities``)
    tunes it.

    A process that already runs as root (the functional tests) can start
    the daemon by forking instead::

        sys_admin_pctxt.start(priv_context.Method.FORK)

    or call the entrypoints in-process with
    ``sys_admin_pctxt.set_client_mode(False)``.
"""

import os

from oslo_privsep import capabilities
from oslo_privsep import priv_context

sys_admin_pctxt = priv_context.PrivContext(
    "snapmanager_nova",
    cfg_section="snapmanager_sys_admin",
    pypath=__name__ + ".sys_admin_pctxt",
    capabilities=[
        capabilities.CAP_CHOWN,
        capabilities.CAP_DAC_OVERRIDE,
        capabilities.CAP_FOWNER,
    ],
)


def start_daemon():
    """Start the privileged daemon before any work arrives.

    Starting it up front makes a broken sudoers entry fail the agent's
    start, loudly, instead of the first snapshot an hour later.
    """
    if os.geteuid() == 0:
        sys_admin_pctxt.start(priv_context.Method.FORK)
    else:
        sys_admin_pctxt.start(priv_context.Method.ROOTWRAP)
