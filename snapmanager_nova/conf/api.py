"""Options of the [api] group: the snapmanager-api REST service."""

from oslo_config import cfg

api_group = cfg.OptGroup(
    "api",
    title="REST API options",
    help="Options of the snapmanager-api service.",
)

api_opts = [
    cfg.HostAddressOpt(
        "bind_host",
        default="0.0.0.0",
        help="Address snapmanager-api listens on when run standalone "
        "(under a WSGI server this is ignored).",
    ),
    cfg.PortOpt(
        "bind_port",
        default=8799,
        help="TCP port snapmanager-api listens on when run standalone.",
    ),
    cfg.IntOpt(
        "max_limit",
        default=1000,
        min=1,
        help="Largest page size a list request may ask for with `limit`.",
    ),
    cfg.IntOpt(
        "max_request_body_size",
        default=65536,
        min=1024,
        help="Largest request body, in bytes, the API accepts; larger "
        "bodies get HTTP 413.",
    ),
    cfg.StrOpt(
        "auth_strategy",
        default="keystone",
        choices=[
            ("keystone", "Validate tokens with keystonemiddleware."),
            ("noauth", "No authentication; for tests only."),
        ],
        help="How API requests are authenticated.",
    ),
]


def register_opts(conf):
    conf.register_group(api_group)
    conf.register_opts(api_opts, group=api_group)


def list_opts():
    return {api_group: api_opts}
