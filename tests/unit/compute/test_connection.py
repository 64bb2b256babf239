import libvirt

from snapmanager_nova.compute import connection


def test_one_connection_is_shared():
    opened = []

    def opener():
        opened.append(libvirt.open("test:///default"))
        return opened[-1]

    shared = connection.LibvirtConnection(opener)
    assert shared.get() is shared.get()
    assert len(opened) == 1


def test_a_connection_closed_under_it_is_reopened():
    # Someone closing the shared connection (it happened in recovery) must
    # not leave every later libvirt call failing on a dead pointer.
    opened = []

    def opener():
        opened.append(libvirt.open("test:///default"))
        return opened[-1]

    shared = connection.LibvirtConnection(opener)
    shared.get().close()
    conn = shared.get()
    assert len(opened) == 2
    assert conn.getLibVersion() > 0
