"""Operations: the progress of a restore, a delete or a snapshot taken now.

Operations are created by the snapshot handlers; this resource only
shows them, for clients polling until ``state`` is ``succeeded`` or
``failed``.
"""

from snapmanager_nova import exception
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import responses
from snapmanager_nova.api import views
from snapmanager_nova.db import api as db_api

SHOW = "snapmanager:operation:show"


class OperationController:
    def show(self, req, operation_id):
        context = api_context.get(req)
        operation = db_api.operation_get(context, operation_id)
        authz.authorize(
            context,
            SHOW,
            operation.project_id,
            hide=exception.OperationNotFound(operation_id=operation_id),
        )
        return responses.json_response(
            200, {"operation": views.operation(operation)}
        )
