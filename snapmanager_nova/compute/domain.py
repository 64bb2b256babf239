"""What the agent learns about an instance from its libvirt domain.

Nova writes everything the agent needs into the domain XML: the domain's
UUID is the instance UUID, ``<metadata><nova:instance>`` names the project
and the owner, and each ``<disk>`` says where the data lives (a qcow2 file
under ``instances_path/<uuid>/`` or an RBD image ``<pool>/<uuid>_disk``)
or that it is a Cinder volume. Parsing is pure so it is tested on XML alone.
"""

import dataclasses
import os
from xml.etree import ElementTree

NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
_NOVA = "{%s}" % NOVA_NS

BACKEND_FILE = "file"
BACKEND_RBD = "rbd"


@dataclasses.dataclass(frozen=True)
class FileDisk:
    """A file-backed disk, e.g. ``instances/<uuid>/disk`` (qcow2)."""

    target: str
    path: str
    format: str
    name: str  # file name within the instance directory: disk, disk.local


@dataclasses.dataclass(frozen=True)
class RbdDisk:
    """An RBD network disk, e.g. ``vms/<uuid>_disk``."""

    target: str
    pool: str
    image: str
    name: str  # the suffix after "<uuid>_": disk, disk.local
    user: str | None
    secret_uuid: str | None


@dataclasses.dataclass(frozen=True)
class VolumeDisk:
    """A Cinder volume attached through os-brick; reported, never touched."""

    target: str
    serial: str | None


@dataclasses.dataclass(frozen=True)
class Instance:
    uuid: str
    domain_name: str
    project_id: str | None
    user_id: str | None
    display_name: str | None
    # Disks Snapmanager snapshots, in domain order (skip_disks removed).
    disks: tuple
    # Cinder volumes and skipped disks: listed so callers can report them.
    volumes: tuple = ()
    skipped: tuple = ()
    # A virtio-serial channel named org.qemu.guest_agent.0 is configured;
    # whether an agent answers on it is only known by trying.
    has_agent_channel: bool = False

    @property
    def backend(self):
        """``file`` or ``rbd``; None when there is nothing to snapshot.

        Nova puts all of an instance's ephemeral disks on one backend
        (``[libvirt] images_type``), so a mix means this is not a Nova
        layout and the agent must not guess.
        """
        kinds = {type(disk) for disk in self.disks}
        if kinds == {FileDisk}:
            return BACKEND_FILE
        if kinds == {RbdDisk}:
            return BACKEND_RBD
        return None


def parse_domain_xml(xml, skip_disks=()):
    """Return the :class:`Instance` a Nova domain XML describes."""
    root = ElementTree.fromstring(xml)
    uuid = root.findtext("uuid")
    nova = root.find(f"metadata/{_NOVA}instance")
    owner = nova.find(f"{_NOVA}owner") if nova is not None else None

    disks, volumes, skipped = [], [], []
    for element in root.findall("devices/disk"):
        if element.get("device") not in ("disk", None):
            continue  # cdrom and floppy (config drive on ide) are not data
        disk = _parse_disk(element, uuid)
        if isinstance(disk, VolumeDisk):
            volumes.append(disk)
        elif disk.name in skip_disks:
            skipped.append(disk)
        else:
            disks.append(disk)

    channel_names = {
        target.get("name") for target in root.findall("devices/channel/target")
    }
    return Instance(
        uuid=uuid,
        domain_name=root.findtext("name"),
        project_id=_attr(owner, "project", "uuid"),
        user_id=_attr(owner, "user", "uuid"),
        display_name=(
            nova.findtext(f"{_NOVA}name") if nova is not None else None
        ),
        disks=tuple(disks),
        volumes=tuple(volumes),
        skipped=tuple(skipped),
        has_agent_channel="org.qemu.guest_agent.0" in channel_names,
    )


def _attr(parent, child, attribute):
    if parent is None:
        return None
    element = parent.find(f"{_NOVA}{child}")
    return element.get(attribute) if element is not None else None


def _parse_disk(element, instance_uuid):
    target = element.find("target").get("dev")
    source = element.find("source")
    serial = element.findtext("serial")
    kind = element.get("type")
    path = source.get("file") if source is not None else None
    # Nova's own file-backed disks live in the instance's directory; a file
    # elsewhere (an NFS-backed Cinder volume) is a volume.
    if (
        kind == "file"
        and path
        and os.path.basename(os.path.dirname(path)) == instance_uuid
    ):
        driver = element.find("driver")
        return FileDisk(
            target=target,
            path=path,
            format=driver.get("type") if driver is not None else "raw",
            name=os.path.basename(path),
        )
    if (
        kind == "network"
        and source is not None
        and source.get("protocol") == "rbd"
        and "/" in source.get("name", "")
    ):
        pool, image = source.get("name").split("/", 1)
        prefix = f"{instance_uuid}_"
        if image.startswith(prefix):
            auth = element.find("auth")
            secret = auth.find("secret") if auth is not None else None
            return RbdDisk(
                target=target,
                pool=pool,
                image=image,
                name=image[len(prefix) :],
                user=auth.get("username") if auth is not None else None,
                secret_uuid=secret.get("uuid") if secret is not None else None,
            )
    # Anything else (block devices, iSCSI, RBD images not named after the
    # instance) is a Cinder volume to Nova: Snapmanager leaves it alone.
    return VolumeDisk(target=target, serial=serial)
