"""Quiescing the guest's filesystems through qemu-guest-agent.

A snapshot is application-consistent when the guest froze its filesystems
first, and crash-consistent otherwise. Which one a schedule gets is its
quiesce policy:

``prefer`` (default)
    freeze when the guest can; when it cannot (no agent channel in the
    domain: libvirt error 74; a channel nobody answers on: error 86) take
    a crash-consistent snapshot and record ``quiesced=False``.
``require``
    fail the snapshot with the reason when the guest cannot be frozen.
``skip``
    never try (for guests whose agent is known to misbehave).

Any other freeze error is a real failure and is never papered over.
"""

import contextlib

import libvirt

from snapmanager_nova import exception
from snapmanager_nova.compute import calls

QUIESCE_PREFER = "prefer"
QUIESCE_REQUIRE = "require"
QUIESCE_SKIP = "skip"
QUIESCE_POLICIES = (QUIESCE_PREFER, QUIESCE_REQUIRE, QUIESCE_SKIP)

# libvirt's answers when freezing is impossible rather than broken.
_CANNOT_FREEZE = (
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,  # 74: no guest agent channel
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,  # 86: channel, but no agent
)


def cannot_freeze(exc):
    """True when ``exc`` says the guest cannot be frozen (74 or 86)."""
    if isinstance(exc, exception.BackendError):
        return (
            exc.kwargs.get("origin") == "libvirt"
            and exc.kwargs.get("origin_code") in _CANNOT_FREEZE
        )
    return (
        isinstance(exc, libvirt.libvirtError)
        and exc.get_error_code() in _CANNOT_FREEZE
    )


def quiesce_failed(instance_uuid, exc):
    """The error a ``require`` policy raises for an unfreezable guest."""
    if isinstance(exc, exception.BackendError):
        code, detail = exc.kwargs.get("origin_code"), exc.kwargs.get("detail")
    else:
        code, detail = exc.get_error_code(), exc
    return exception.QuiesceFailed(
        instance_uuid=instance_uuid,
        operation="quiesce",
        origin="libvirt",
        origin_code=code,
        detail=detail,
    )


def validate_policy(policy):
    if policy not in QUIESCE_POLICIES:
        raise exception.Invalid(
            reason=f"quiesce: {policy!r} is not one of "
            f"{', '.join(QUIESCE_POLICIES)}"
        )


@contextlib.contextmanager
def frozen(dom, instance_uuid, policy, timeout, agent_channel=True):
    """Freeze the guest's filesystems for the ``with`` body if possible.

    Yields True when the guest is frozen (and thaws it on the way out, even
    when the body fails), False when the snapshot goes ahead
    crash-consistent. A shut-off domain has nothing to freeze: False.
    ``agent_channel``: whether the domain's XML has the agent's channel;
    without it ``prefer`` asks libvirt nothing (Nova adds the channel
    only for images with ``hw_qemu_guest_agent=yes``, so most guests
    have none, and the two calls would only cost the snapshot time).
    """
    validate_policy(policy)
    if policy == QUIESCE_SKIP or (
        policy == QUIESCE_PREFER and not agent_channel
    ):
        yield False
        return
    if not calls.bounded("domain state", timeout, dom.isActive):
        yield False
        return
    try:
        calls.bounded("fsFreeze", timeout, dom.fsFreeze)
    except exception.BackendError as exc:
        if not cannot_freeze(exc):
            raise
        if policy == QUIESCE_REQUIRE:
            raise quiesce_failed(instance_uuid, exc) from exc
        yield False
        return
    try:
        yield True
    finally:
        calls.bounded("fsThaw", timeout, dom.fsThaw)
