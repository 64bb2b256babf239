"""A server's snapshot policy: its schedules, and what happens on delete.

A server has a policy when Snapmanager's record of it says
``snapshot_enabled``. PUT creates or replaces the policy: it records the
server as Nova describes it (project, host), switches snapshots on and
makes the server's schedules exactly the ones sent. DELETE switches
snapshots off and removes the schedules; the snapshots already taken
stay, until deleted one by one.

Each change is announced once committed (``snapmanager.snapshot_policy.
update|delete``, doc/source/notifications.rst).
"""

import collections

from snapmanager_nova import exception
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import pagination
from snapmanager_nova.api import responses
from snapmanager_nova.api import schedule_requests
from snapmanager_nova.api import validation
from snapmanager_nova.api import views
from snapmanager_nova.api.handlers import common
from snapmanager_nova.api.schemas import snapshot_policy as schemas
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

PREFIX = "snapmanager:snapshot_policy:"
SHOW = PREFIX + "show"
LIST = PREFIX + "list"
LIST_ALL_PROJECTS = PREFIX + "list:all_projects"
SET = PREFIX + "set"
UNSET = PREFIX + "unset"


def _tenant_schedules(context, **filters):
    # The API shows and changes the schedules tenants set. Those an
    # operator declares in [conductor] policy_file are the operator's: the
    # file is their only source, and a tenant's PUT or DELETE must not
    # remove them (doc/source/policy_file.rst).
    return db_api.schedule_list(
        context, source=models.SCHEDULE_SOURCE_API, **filters
    )


def _policy_of(context, server_id):
    """The server's row and schedules; SnapshotPolicyNotFound if none."""
    try:
        instance = db_api.instance_get(context, server_id)
    except exception.InstanceNotFound:
        raise exception.SnapshotPolicyNotFound(server_id=server_id) from None
    if not instance.snapshot_enabled:
        raise exception.SnapshotPolicyNotFound(server_id=server_id)
    return instance, _tenant_schedules(context, instance_uuid=server_id)


def _policy_response(instance, schedules):
    return responses.json_response(
        200, {"snapshot_policy": views.server_policy(instance, schedules)}
    )


class SnapshotPolicyController:
    def __init__(self, conf, nova, now):
        self.conf = conf
        self.nova = nova
        self.now = now

    def _authorize(self, context, rule, project_id, server_id):
        authz.authorize(
            context,
            rule,
            project_id,
            hide=exception.ServerNotFound(server_id=server_id),
        )

    def show(self, req, server_id):
        context = api_context.get(req)
        project_id = common.server_project(self.nova, context, server_id)
        self._authorize(context, SHOW, project_id, server_id)
        return _policy_response(*_policy_of(context, server_id))

    def update(self, req, server_id):
        context = api_context.get(req)
        # Only a server Nova has can get a policy: its project and host
        # are Nova's to say.
        server = self.nova.get(context, server_id)
        self._authorize(context, SET, server.project_id, server_id)
        body = validation.json_body(req, schemas.SERVER_POLICY)
        requested = schedule_requests.parse(body["schedules"], self.now())
        now = self.now()
        with db_api.context_manager.writer.using(context):
            instance = db_api.instance_create_or_update(
                context,
                server.id,
                {
                    "project_id": server.project_id,
                    "host": server.host,
                    "name": server.name,
                    "snapshot_enabled": True,
                    # PUT replaces the whole policy: left out is false.
                    "keep_after_delete": body.get("keep_after_delete", False),
                },
            )
            schedules = schedule_requests.replace(
                context,
                _tenant_schedules(context, instance_uuid=server.id),
                requested,
                {"instance_uuid": server.id},
                now,
            )
        notifier.policy_changed(
            context,
            "update",
            server.id,
            server.project_id,
            instance,
            schedules,
        )
        return _policy_response(instance, schedules)

    def delete(self, req, server_id):
        context = api_context.get(req)
        project_id = common.server_project(self.nova, context, server_id)
        self._authorize(context, UNSET, project_id, server_id)
        with db_api.context_manager.writer.using(context):
            _, schedules = _policy_of(context, server_id)
            schedule_requests.delete_all(context, schedules)
            db_api.instance_create_or_update(
                context, server_id, {"snapshot_enabled": False}
            )
        notifier.policy_changed(context, "delete", server_id, project_id)
        return responses.no_content()

    def index(self, req, query):
        context = api_context.get(req)
        if query.get("all_projects") in ("1", "true"):
            authz.authorize(context, LIST_ALL_PROJECTS, context.project_id)
            project_id = None
        else:
            authz.authorize(context, LIST, context.project_id)
            project_id = context.project_id
        page_size = pagination.limit(query, self.conf.api.max_limit)
        instances = db_api.instance_list_page(
            context,
            project_id=project_id,
            snapshot_enabled=True,
            limit=page_size,
            marker=query.get("marker"),
        )
        by_instance = collections.defaultdict(list)
        for row in db_api.schedule_list_by_instances(
            context,
            [instance.uuid for instance in instances],
            source=models.SCHEDULE_SOURCE_API,
        ):
            by_instance[row.instance_uuid].append(row)
        return responses.json_response(
            200,
            {
                "snapshot_policies": [
                    views.server_policy(instance, by_instance[instance.uuid])
                    for instance in instances
                ],
                "snapshot_policies_links": pagination.links(
                    req,
                    query,
                    instances,
                    page_size,
                    lambda instance: instance.uuid,
                ),
            },
        )
