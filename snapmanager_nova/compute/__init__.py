"""snapmanager-compute: the agent beside nova-compute on every host."""
