"""Policy checks of the API, with the owning project as the target.

The target's ``project_id`` is always the project that owns the resource
as Snapmanager or Nova records it, never a value from the request: a
tenant cannot reach another project's server by naming that project.
"""

from oslo_policy import policy as oslo_policy

from snapmanager_nova import exception
from snapmanager_nova import policy


def _allowed(context, rule, target):
    try:
        return policy.get_enforcer().authorize(
            rule, target, context, do_raise=False
        )
    except oslo_policy.InvalidScope:
        # A token of another scope (system, domain) where the rule wants
        # a project: not allowed, and not an error of the server.
        return False


def require_project_scope(context):
    """Refuse tokens without a project: every resource lives in one."""
    if not context.project_id:
        raise exception.Forbidden("A token scoped to a project is required.")


def is_admin(context):
    return _allowed(context, "context_is_admin", {})


def sees_error_detail(context, owner_project_id):
    """Whether the caller is shown errors in full (api/views.py)."""
    return _allowed(
        context,
        "snapmanager:error_detail:show",
        {"project_id": owner_project_id},
    )


def authorize(context, rule, owner_project_id, hide=None):
    """Raise unless ``rule`` allows the caller on ``owner_project_id``.

    :param hide: the NotFound to raise instead of Forbidden when the
        caller is not of the owning project, so that a refusal does not
        tell another project's tenant that the resource exists. Within
        the owning project (a reader trying to write) it is 403.
    """
    require_project_scope(context)
    if _allowed(context, rule, {"project_id": owner_project_id}):
        return
    if hide is not None and context.project_id != owner_project_id:
        raise hide
    raise exception.Forbidden(action=rule)
