"""Quota sets: a project's limits, and what it uses of them.

Shaped as Nova's and Cinder's ``os-quota-sets``: GET shows a project's
set, PUT (admin) overrides some of its limits, DELETE (admin) drops the
overrides so the ``[quota]`` defaults apply again. The project is named
in the path and is itself the target of the policy check, so naming
another project is 403, as for project defaults. The limits are applied
by :mod:`snapmanager_nova.quota`, for the API and the conductor alike.
Served from microversion 1.1.
"""

from snapmanager_nova import quota
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import errors
from snapmanager_nova.api import microversion
from snapmanager_nova.api import responses
from snapmanager_nova.api import validation
from snapmanager_nova.api.schemas import quota_set as schemas
from snapmanager_nova.db import api as db_api

PREFIX = "snapmanager:quota_set:"
SHOW = PREFIX + "show"
UPDATE = PREFIX + "update"
DELETE = PREFIX + "delete"

MIN_VERSION = "1.1"


def _quota_set(context, project_id):
    limits = quota.limits(context, project_id)
    usage = quota.usage(context, project_id)
    defaults = quota.defaults()
    return {
        "project_id": project_id,
        **{
            resource: {
                "limit": limits[resource],
                "in_use": usage[resource],
                "default": defaults[resource],
            }
            for resource in quota.RESOURCES
        },
    }


class QuotaSetController:
    def _authorize(self, req, rule, project_id):
        if not microversion.at_least(req, MIN_VERSION):
            # As for any path the requested version does not have.
            raise errors.HTTPError(404, f"No resource at {req.path_info}.")
        context = api_context.get(req)
        authz.authorize(context, rule, project_id)
        return context

    def _response(self, context, project_id):
        return responses.json_response(
            200, {"quota_set": _quota_set(context, project_id)}
        )

    def show(self, req, project_id):
        context = self._authorize(req, SHOW, project_id)
        return self._response(context, project_id)

    def update(self, req, project_id):
        context = self._authorize(req, UPDATE, project_id)
        body = validation.json_body(req, schemas.UPDATE)
        db_api.project_quota_set(context, project_id, body["quota_set"])
        return self._response(context, project_id)

    def delete(self, req, project_id):
        context = self._authorize(req, DELETE, project_id)
        db_api.project_quota_delete_all(context, project_id)
        return responses.no_content()
