"""The hooks python-openstackclient looks for in a plugin module.

``openstack`` imports this module on every run, whatever the command, so
it imports nothing heavy: the client and the commands are loaded only
when a Snapmanager command runs.
"""

from osc_lib import utils

API_NAME = "snapmanager"
API_VERSION_OPTION = "os_snapmanager_api_version"
DEFAULT_API_VERSION = "1"
API_VERSIONS = ("1",)


def make_client(instance):
    """The Snapmanager client of an OSC ClientManager (``instance``).

    It shares the ClientManager's keystoneauth session (so the token is
    fetched once for Nova and Snapmanager alike) and follows the
    interface and region the user chose for every service.
    """
    # Imported here, not at the top: see the module's docstring. v1 is
    # the only version, so the requested one needs no lookup.
    from snapmanager_nova.osc.v1 import client

    instance.setup_auth()
    # --os-snapmanager-endpoint ends up in the cloud's config as
    # ``snapmanager_endpoint``; openstacksdk's lookup also honours
    # ``snapmanager_endpoint_override`` from clouds.yaml.
    endpoint = instance._cli_options.get_endpoint(API_NAME)
    return client.Client(
        instance.session,
        interface=instance.interface,
        region_name=instance.region_name,
        endpoint_override=endpoint,
    )


def build_option_parser(parser):
    """Add Snapmanager's global options to the ``openstack`` parser."""
    parser.add_argument(
        "--os-snapmanager-api-version",
        metavar="<snapmanager-api-version>",
        default=utils.env(
            "OS_SNAPMANAGER_API_VERSION", default=DEFAULT_API_VERSION
        ),
        help="Snapmanager API version, default="
        f"{DEFAULT_API_VERSION} (Env: OS_SNAPMANAGER_API_VERSION)",
    )
    parser.add_argument(
        "--os-snapmanager-endpoint",
        metavar="<url>",
        default=utils.env("OS_SNAPMANAGER_ENDPOINT"),
        help="Snapmanager API URL to use instead of the service catalog's "
        "'snapmanager' endpoint (Env: OS_SNAPMANAGER_ENDPOINT)",
    )
    return parser
