"""OpenStackClient plugin: ``openstack server snapshot-policy`` and
``openstack server snapshot`` commands (doc/source/cli.rst)."""
