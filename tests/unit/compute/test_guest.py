"""Which quiesce policy asks libvirt what (compute/guest.py)."""

import libvirt
import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute import guest


class RecordingDomain:
    """The libvirt calls a freeze makes, answered as a running guest with
    no agent channel answers them (error 74 on fsFreeze)."""

    def __init__(self, active=True, freeze_error=None):
        self.active = active
        self.freeze_error = freeze_error
        self.calls = []

    def isActive(self):
        self.calls.append("isActive")
        return self.active

    def fsFreeze(self):
        self.calls.append("fsFreeze")
        if self.freeze_error is not None:
            error = libvirt.libvirtError("no agent")
            error.err = (self.freeze_error, 0, "no agent", 0)
            raise error
        return 1

    def fsThaw(self):
        self.calls.append("fsThaw")
        return 1


def _frozen(dom, policy, agent_channel):
    with guest.frozen(
        dom, "uuid-1", policy, 5, agent_channel=agent_channel
    ) as quiesced:
        return quiesced


def test_prefer_without_a_channel_asks_libvirt_nothing():
    dom = RecordingDomain()
    assert _frozen(dom, guest.QUIESCE_PREFER, agent_channel=False) is False
    assert dom.calls == []


def test_prefer_with_a_channel_freezes_and_thaws():
    dom = RecordingDomain()
    assert _frozen(dom, guest.QUIESCE_PREFER, agent_channel=True) is True
    assert dom.calls == ["isActive", "fsFreeze", "fsThaw"]


def test_prefer_with_a_silent_channel_goes_on_crash_consistent():
    dom = RecordingDomain(freeze_error=libvirt.VIR_ERR_AGENT_UNRESPONSIVE)
    assert _frozen(dom, guest.QUIESCE_PREFER, agent_channel=True) is False
    assert dom.calls == ["isActive", "fsFreeze"]


def test_require_without_a_channel_still_asks_and_fails_with_the_reason():
    dom = RecordingDomain(freeze_error=libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED)
    with pytest.raises(exception.QuiesceFailed):
        _frozen(dom, guest.QUIESCE_REQUIRE, agent_channel=False)
    assert dom.calls == ["isActive", "fsFreeze"]


def test_a_shut_off_domain_has_nothing_to_freeze():
    dom = RecordingDomain(active=False)
    assert _frozen(dom, guest.QUIESCE_REQUIRE, agent_channel=True) is False
    assert dom.calls == ["isActive"]
