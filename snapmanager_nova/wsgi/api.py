"""snapmanager-api for WSGI servers: ``snapmanager_nova.wsgi.api:application``.

For example ``uwsgi --http-socket :8799 --module
snapmanager_nova.wsgi.api:application``. The configuration is read at
import, from the files named in ``SNAPMANAGER_CONFIG_FILES`` (separated
by ``;``) or else from ``/etc/snapmanager/snapmanager.conf``; the WSGI
server's own command line is not Snapmanager's and is never parsed.
"""

import os

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import service
from snapmanager_nova.api import app

CONFIG_FILES_ENV = "SNAPMANAGER_CONFIG_FILES"


def init_application():
    files = os.environ.get(CONFIG_FILES_ENV)
    service.prepare(
        argv=[],
        default_config_files=files.split(";") if files else None,
    )
    return app.create_app(sm_conf.CONF)


application = init_application()
