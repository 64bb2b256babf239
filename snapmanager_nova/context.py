"""Snapmanager's request context.

oslo.context's RequestContext, made able to carry an oslo.db enginefacade
session (``context.session``) so one context serves the API, RPC and the
database layer alike.
"""

from oslo_context import context as oslo_context
from oslo_db.sqlalchemy import enginefacade


@enginefacade.transaction_context_provider
class RequestContext(oslo_context.RequestContext):
    """oslo.context's request context, able to carry a DB session."""


def get_admin_context():
    """A context for Snapmanager's own background work."""
    return RequestContext(is_admin=True, overwrite=False)
