"""Entry point for oslo-config-generator (namespace ``snapmanager``)."""

from snapmanager_nova import conf


def list_opts():
    """Return [(group, [opts])] sorted by group name for the generator."""
    groups = {}
    for module in conf.MODULES:
        for group, opts in module.list_opts().items():
            name = getattr(group, "name", group)
            groups.setdefault(name, (group, []))[1].extend(opts)
    return [groups[name] for name in sorted(groups)]
