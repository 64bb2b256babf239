"""The freshness check: servers whose scheduled snapshots are late.

Admin-only by default: it reads across projects, and what it answers is
an operator's alarm. The rule is :func:`schedule.lateness`, the walk
over the database :func:`freshness.find_stale`; doc/source/freshness.rst
explains both. Served from microversion 1.2.
"""

import datetime

from snapmanager_nova import freshness
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import errors
from snapmanager_nova.api import microversion
from snapmanager_nova.api import pagination
from snapmanager_nova.api import responses
from snapmanager_nova.api import views
from snapmanager_nova.db import api as db_api

LIST = "snapmanager:stale_server:list"

MIN_VERSION = "1.2"


class StaleServerController:
    def __init__(self, conf, now):
        self.conf = conf
        self.now = now

    def index(self, req, query):
        if not microversion.at_least(req, MIN_VERSION):
            # As for any path the requested version does not have.
            raise errors.HTTPError(404, f"No resource at {req.path_info}.")
        context = api_context.get(req)
        project_id = query.get("project_id")
        # The target is the project asked about, or no project for every
        # project's servers: a rule an operator relaxes to a project's
        # reader then lets them check their own project, never all.
        authz.authorize(context, LIST, project_id)
        page_size = pagination.limit(query, self.conf.api.max_limit)
        grace = query.get("grace")
        grace = self.conf.freshness.grace if grace is None else int(grace)
        stale = freshness.find_stale(
            context,
            self.now(),
            datetime.timedelta(seconds=grace),
            project_id=project_id,
            marker=query.get("marker"),
            limit=page_size,
        )
        # Deleted servers whose snapshots are still owed a release: a
        # short list of the same kind of alarm, given with the first page.
        pending = []
        if query.get("marker") is None:
            pending = [
                views.release_pending(
                    row, authz.sees_error_detail(context, row.project_id)
                )
                for row in db_api.instance_list_releases(context)
                if project_id is None or row.project_id == project_id
            ]
        return responses.json_response(
            200,
            {
                "stale_servers": [views.stale_server(item) for item in stale],
                "release_pending": pending,
                "stale_servers_links": pagination.links(
                    req, query, stale, page_size, lambda item: item.server_id
                ),
            },
        )
