"""Operations: the progress of a restore, a delete or a snapshot taken
now, and the tenant's way out of a failed restore.

Operations are created by the snapshot handlers; clients poll them until
``state`` is ``succeeded`` or ``failed``. A failed restore keeps holding
its server (stopped and locked by Snapmanager, which the tenant cannot
unlock in Nova): its ``action`` either retries it or abandons it, and
either way a new operation takes the hold over and the conductor does
the work.
"""

from snapmanager_nova import exception
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import errors
from snapmanager_nova.api import microversion
from snapmanager_nova.api import responses
from snapmanager_nova.api import validation
from snapmanager_nova.api import views
from snapmanager_nova.api.handlers import common
from snapmanager_nova.api.schemas import snapshot as schemas
from snapmanager_nova.db import api as db_api

PREFIX = "snapmanager:operation:"
SHOW = PREFIX + "show"
RETRY = PREFIX + "retry"
ABANDON = PREFIX + "abandon"
# The action is served from this microversion on.
ACTION_MIN_VERSION = "1.3"

# The action's rule, and the type of the operation that takes over.
_ACTIONS = {"retry": (RETRY, "restore"), "abandon": (ABANDON, "abandon")}


class OperationController:
    def __init__(self, nova=None):
        """``nova``: the :class:`api.nova.NovaServers` a retry checks the
        server with."""
        self.nova = nova

    def _get(self, context, rule, operation_id):
        operation = db_api.operation_get(context, operation_id)
        authz.authorize(
            context,
            rule,
            operation.project_id,
            hide=exception.OperationNotFound(operation_id=operation_id),
        )
        return operation

    def show(self, req, operation_id):
        context = api_context.get(req)
        operation = self._get(context, SHOW, operation_id)
        detail = authz.sees_error_detail(context, operation.project_id)
        return responses.json_response(
            200,
            {"operation": views.operation(operation, error_detail=detail)},
        )

    def action(self, req, operation_id):
        if not microversion.at_least(req, ACTION_MIN_VERSION):
            # As for any path the requested version does not have.
            raise errors.HTTPError(404, f"No resource at {req.path_info}.")
        context = api_context.get(req)
        body = validation.json_body(req, schemas.OPERATION_ACTION)
        if len(body) != 1:
            raise exception.InvalidField(
                field="body",
                reason="exactly one of "
                f"{', '.join(schemas.OPERATION_ACTIONS)} is required",
            )
        (action,) = body
        rule, successor_type = _ACTIONS[action]
        operation = self._get(context, rule, operation_id)
        if action == "retry":
            # Refused up front like a restore; abandoning needs nothing
            # of the server: it is the way out whatever Nova shows.
            common.check_restorable(
                self.nova, context, operation.instance_uuid
            )
        successor = db_api.operation_take_over_restore(
            context, operation.id, successor_type
        )
        return common.operation_accepted(req, successor)
