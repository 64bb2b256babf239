"""Privilege separation for the compute agent.

The agent itself runs unprivileged. The few operations that must act on
files Nova and libvirt own (reading a frozen disk layer, writing a
restored disk beside Nova's, removing an overlay libvirt created) run in
an oslo.privsep daemon that keeps only the capabilities below, the same
file-ownership capabilities Nova's own ``sys_admin_pctxt`` relies on.

Starting the daemon
    In production the first privileged call starts ``privsep-helper``
    through the root helper given to ``oslo_privsep.priv_context.init``
    (``sudo snapmanager-rootwrap /etc/snapmanager/rootwrap.conf``), with
    the agent's config files, so the daemon reads the same ``[compute]``
    paths. The ``[snapmanager_sys_admin]`` section of the config (oslo
    .privsep's own options: ``helper_command``, ``user``, ``group``,
    ``capabilities``) tunes it.

    A process that already runs as root (the functional tests) can start
    the daemon by forking instead::

        sys_admin_pctxt.start(priv_context.Method.FORK)

    or call the entrypoints in-process with
    ``sys_admin_pctxt.set_client_mode(False)``.
"""

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
