"""Nova's files for a file-backed instance, as the agent finds them.

Nova keeps an instance's disks in ``<instances_path>/<uuid>/`` (``disk``,
``disk.local``: qcow2 over a file of its image cache,
``<instances_path>/_base/<name>``, or flat raw files when it does not
use copy-on-write images). This module checks that an instance really
is laid out that way before anything touches it, and wraps the bounded,
privileged calls the qcow2 backend makes on those files.
"""

import dataclasses
import os

import libvirt

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from snapmanager_nova.compute import domain
from snapmanager_nova.compute.backends import overlay
from snapmanager_nova.compute.backends import store as store_mod
from snapmanager_nova.privsep import fs

CONF = sm_conf.CONF

BASE_DIR = "_base"
FORMATS = ("qcow2", "raw")


@dataclasses.dataclass(frozen=True)
class Layer:
    """A Nova disk as found before a snapshot."""

    disk: domain.FileDisk
    virtual_size: int
    backing: str | None  # Nova's base file, absolute
    backing_format: str | None

    @property
    def backing_name(self):
        return os.path.basename(self.backing) if self.backing else None


def call(operation, func, *args):
    """A libvirt or qemu-img call that takes no time proportional to
    the data: bounded by ``[compute] call_timeout``."""
    return calls.bounded(operation, CONF.compute.call_timeout, func, *args)


def data_call(operation, func, *args):
    """A step that moves disk data: bounded by ``copy_timeout``."""
    return calls.bounded(operation, CONF.compute.copy_timeout, func, *args)


def instance_dir(instance_uuid):
    return os.path.join(
        os.path.abspath(CONF.compute.instances_path), instance_uuid
    )


def base_dir():
    return os.path.join(os.path.abspath(CONF.compute.instances_path), BASE_DIR)


def overlay_path(disk, index):
    return os.path.join(
        os.path.dirname(disk.path), overlay.overlay_name(disk.name, index)
    )


def own_overlay(instance_uuid, path):
    """(Nova disk name, index) when ``path`` is one of our overlays."""
    if not path or os.path.dirname(path) != instance_dir(instance_uuid):
        return None
    return overlay.parse_overlay_name(os.path.basename(path))


def file_state(path):
    """[size, mtime] of a Nova file, None when it is missing."""
    return call("stat", fs.file_state, path)


def remove(path):
    call("remove", fs.remove, path)


def describe(dom):
    """The Instance the domain's current XML describes."""
    return domain.parse_domain_xml(
        call("domain XML", dom.XMLDesc, 0),
        skip_disks=tuple(CONF.compute.skip_disks),
    )


def used_files(dom):
    """Every file the domain's live or persistent XML names."""
    used = set()
    if dom is None:
        return used
    flags = [libvirt.VIR_DOMAIN_XML_INACTIVE]
    if call("domain state", dom.isActive):
        flags.append(0)
    for flag in flags:
        for disk in overlay.domain_disks(
            call("domain XML", dom.XMLDesc, flag)
        ):
            used.update((disk.source, disk.backing))
    return used


def _unsupported(instance_uuid, reason):
    return exception.UnsupportedDisks(
        instance_uuid=instance_uuid, reason=reason
    )


def nova_disks(instance):
    """The instance's disks, checked to be files Nova made, in its dir."""
    directory = instance_dir(instance.uuid)
    for disk in instance.disks:
        if os.path.dirname(os.path.abspath(disk.path)) != directory:
            raise _unsupported(
                instance.uuid, f"{disk.path} is not in {directory}"
            )
        if overlay.MARK in disk.name:
            raise _unsupported(
                instance.uuid, f"{disk.target} still runs on {disk.path}"
            )
        if disk.format not in FORMATS:
            raise _unsupported(
                instance.uuid, f"{disk.path} is in format {disk.format}"
            )
        store_mod.check_name(disk.name)
    return instance.disks


def layer(instance_uuid, disk):
    """What Nova's disk is layered over, checked to be Nova's layout:
    nothing, or one file of Nova's image cache that has no backing file
    itself."""
    info = call(
        f"image info {disk.name}", fs.image_info, disk.path, disk.format
    )
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    if not backing:
        return Layer(disk, info["virtual-size"], None, None)
    backing = os.path.normpath(
        os.path.join(os.path.dirname(disk.path), backing)
    )
    fmt = info.get("backing-filename-format")
    if os.path.dirname(backing) != base_dir():
        raise _unsupported(
            instance_uuid,
            f"{disk.path} is over {backing}, not over an image of Nova's "
            f"cache {base_dir()}",
        )
    if fmt not in FORMATS:
        raise _unsupported(
            instance_uuid, f"{disk.path} does not record its backing format"
        )
    store_mod.check_name(os.path.basename(backing))
    base_info = call(f"image info {backing}", fs.image_info, backing, fmt)
    if base_info.get("backing-filename"):
        raise _unsupported(
            instance_uuid, f"Nova's base {backing} has a backing file itself"
        )
    return Layer(disk, info["virtual-size"], backing, fmt)
