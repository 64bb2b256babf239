"""A project's default snapshot policy.

The default schedules snapshot every server of the project that has a
policy (``snapshot_enabled``) but no enabled schedule of its own. The
project is named in the path and is itself the target of the policy
check: a member may set their own project's default, an admin any
project's. Naming another project is refused with 403, not 404: the
project id is the caller's own input, so the refusal reveals nothing.
Each change is announced once committed (``snapmanager.
default_snapshot_policy.update|delete``).
"""

from snapmanager_nova import exception
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import responses
from snapmanager_nova.api import schedule_requests
from snapmanager_nova.api import validation
from snapmanager_nova.api import views
from snapmanager_nova.api.handlers import snapshot_policies
from snapmanager_nova.api.schemas import snapshot_policy as schemas
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

# The width of the project_id columns.
_MAX_PROJECT_ID = 255


def _defaults_of(context, project_id):
    # Tenants' defaults only; see snapshot_policies._tenant_schedules.
    return db_api.schedule_list(
        context,
        project_id=project_id,
        is_project_default=True,
        source=models.SCHEDULE_SOURCE_API,
    )


def _check_project_id(project_id):
    if len(project_id) > _MAX_PROJECT_ID:
        raise exception.InvalidField(
            field="project_id",
            reason=f"{validation.show(project_id)} is longer than "
            f"{_MAX_PROJECT_ID} characters",
        )


class ProjectDefaultController:
    def __init__(self, now):
        self.now = now

    def _authorize(self, req, rule, project_id):
        context = api_context.get(req)
        authz.authorize(context, rule, project_id)
        _check_project_id(project_id)
        return context

    def show(self, req, project_id):
        context = self._authorize(req, snapshot_policies.SHOW, project_id)
        schedules = _defaults_of(context, project_id)
        if not schedules:
            raise exception.ProjectDefaultPolicyNotFound(project_id=project_id)
        return responses.json_response(
            200,
            {
                "default_snapshot_policy": views.project_default(
                    project_id, schedules
                )
            },
        )

    def update(self, req, project_id):
        context = self._authorize(req, snapshot_policies.SET, project_id)
        body = validation.json_body(req, schemas.PROJECT_DEFAULT)
        requested = schedule_requests.parse(body["schedules"], self.now())
        now = self.now()
        with db_api.context_manager.writer.using(context):
            schedules = schedule_requests.replace(
                context,
                _defaults_of(context, project_id),
                requested,
                {"project_id": project_id, "is_project_default": True},
                now,
            )
        notifier.default_policy_changed(
            context, "update", project_id, schedules
        )
        return responses.json_response(
            200,
            {
                "default_snapshot_policy": views.project_default(
                    project_id, schedules
                )
            },
        )

    def delete(self, req, project_id):
        context = self._authorize(req, snapshot_policies.UNSET, project_id)
        with db_api.context_manager.writer.using(context):
            schedules = _defaults_of(context, project_id)
            if not schedules:
                raise exception.ProjectDefaultPolicyNotFound(
                    project_id=project_id
                )
            schedule_requests.delete_all(context, schedules)
        notifier.default_policy_changed(context, "delete", project_id)
        return responses.no_content()
