"""Instances laid out as Nova's libvirt driver lays them out, without Nova.

``<instances>/_base/<sha1>`` is a raw image with known data,
``<instances>/<uuid>/disk`` a qcow2 over it (and ``disk.local`` over an
ephemeral base, ``disk.config`` a config drive on a cdrom), and the
domain XML carries Nova's metadata. The guest has no OS: it sits in
SeaBIOS, so the tests write "guest" data themselves, offline with
qemu-io, or into a running domain's active layer through QEMU's monitor.

Used by the pytest fixtures, the crash-test child process and the
compute benchmark (``benchmarks/compute``) alike.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import time
import uuid as uuid_lib
from xml.sax import saxutils

import libvirt
import libvirt_qemu

from snapmanager_nova.compute import domain

MiB = 1024 * 1024
BASE_SIZE = 8 * MiB
DISK_SIZE = 32 * MiB
# What the image cache's files hold: the guest reads it through its
# disks wherever it has not written.
BASE_PATTERN = 0x11
EPHEMERAL_PATTERN = 0x22

# Nova file name: (target, the device alias libvirt gives it). Nova
# names a flavor's single ephemeral disk ``disk.local`` and ephemeral
# disks from block device mappings ``disk.eph<n>``; an instance has one
# kind or the other, so ``disk.local`` and ``disk.eph0`` share a target.
_DISKS = {
    "disk": ("vda", "virtio-disk0"),
    "disk.local": ("vdb", "virtio-disk1"),
    "disk.eph0": ("vdb", "virtio-disk1"),
    "disk.eph1": ("vdc", "virtio-disk2"),
    "disk.eph2": ("vdd", "virtio-disk3"),
}

DOMAIN_XML = """\
<domain type='qemu'>
  <uuid>{uuid}</uuid>
  <name>{name}</name>
  <memory unit='KiB'>131072</memory>
  <vcpu>1</vcpu>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="34.0.0"/>
      <nova:name>{display_name}</nova:name>
      <nova:creationTime>2026-01-01 00:00:00</nova:creationTime>
      <nova:flavor name="m1.tiny">
        <nova:memory>128</nova:memory>
        <nova:disk>1</nova:disk>
        <nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral>
        <nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="{user_id}">demo</nova:user>
        <nova:project uuid="{project_id}">demo</nova:project>
      </nova:owner>
      <nova:root type="image" uuid="{image_id}"/>
    </nova:instance>
  </metadata>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{disks}
{channel}
  </devices>
</domain>
"""

FILE_DISK = """\
    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file='{path}'/>
      <target dev='{target}' bus='virtio'/>
    </disk>"""

CONFIG_DRIVE = """\
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{path}'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>"""

AGENT_CHANNEL = """\
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>"""


def run(*argv):
    return subprocess.run(
        [str(arg) for arg in argv], check=True, capture_output=True, text=True
    ).stdout


def qemu_io(image, fmt, command, read_only=False):
    """One qemu-io command on an image no QEMU has open; its output."""
    argv = ["qemu-io", "-f", fmt]
    if read_only:
        argv.append("-r")
    return run(*argv, "-c", command, image)


def has_pattern(image, fmt, pattern, offset, length):
    """Whether ``image`` reads ``pattern`` over the whole range.

    qemu-io exits non-zero when ``read -P`` finds other bytes. The image
    must not be open in a QEMU (its metadata may not be on disk yet).
    """
    result = subprocess.run(
        [
            "qemu-io",
            "-r",
            "-f",
            fmt,
            "-c",
            f"read -P {pattern} {offset} {length}",
            str(image),
        ],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


def backing_chain(image, fmt="qcow2"):
    """[(filename, format)] of an image and its backing files."""
    out = run(
        "qemu-img",
        "info",
        "-U",
        "--output=json",
        "--backing-chain",
        "-f",
        fmt,
        image,
    )
    return [(entry["filename"], entry["format"]) for entry in json.loads(out)]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class NovaInstance:
    uuid: str
    name: str
    instances_path: str
    disk_names: tuple
    fmt: str  # of the Nova disks: qcow2, or raw
    bases: dict  # Nova file name -> path of its base (None if raw)
    log_path: str  # QEMU's stdout and stderr
    dom: object = None

    @property
    def directory(self):
        return os.path.join(self.instances_path, self.uuid)

    def path(self, name="disk"):
        return os.path.join(self.directory, name)

    @staticmethod
    def target(name="disk"):
        return _DISKS[name][0]

    def describe(self, skip_disks=("disk.config", "disk.swap")):
        return domain.parse_domain_xml(
            self.dom.XMLDesc(0), skip_disks=skip_disks
        )

    # Guest writes into a running domain's active layer

    def hmp_io(self, name, command):
        """qemu-io through the monitor on a running domain's disk.

        It goes through QEMU's block layer into whatever layer is active
        (an overlay, while one is), exactly as a guest write would, and a
        ``read -P`` sees what the guest would read. QEMU prints qemu-io's
        report on its stdout, which the test environment's libvirtd sends
        to the domain's log file: it is read from there, so a failed
        write or a pattern mismatch fails the test.
        """
        alias = _DISKS[name][1]
        start = os.path.getsize(self.log_path)
        libvirt_qemu.qemuMonitorCommand(
            self.dom,
            f"qemu-io -d /machine/peripheral/{alias}/virtio-backend "
            f'"{command}"',
            libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP,
        )
        deadline = time.monotonic() + 5
        while True:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                f.seek(start)
                report = f.read()
            if "failed" in report or "ops; " in report:
                break
            assert time.monotonic() < deadline, f"no report of {command!r}"
            time.sleep(0.01)
        assert "failed" not in report, f"{command!r}: {report}"
        return report

    # Nova's view

    def sources(self, flags=0):
        """{target: source file} of the domain's virtio disks."""
        from xml.etree import ElementTree

        root = ElementTree.fromstring(self.dom.XMLDesc(flags))
        return {
            element.find("target").get("dev"): element.find("source").get(
                "file"
            )
            for element in root.findall("devices/disk")
            if element.get("device") == "disk"
        }

    def nova_sources(self):
        return {self.target(name): self.path(name) for name in self.disk_names}

    def own_files(self):
        """Snapmanager's files in the instance directory."""
        return sorted(
            name
            for name in os.listdir(self.directory)
            if ".snapmanager-" in name
        )


def make_instance(
    conn,
    name,
    instances_path,
    log_dir,
    disk_names=("disk",),
    running=True,
    agent_channel=False,
    config_drive=True,
    image_id=None,
    base_data="4M",
    base_size=BASE_SIZE,
    disk_size=DISK_SIZE,
    fmt="qcow2",
):
    """Define (and start) a Nova-like instance; data is written first.

    ``disk`` holds 0xab at 64 KiB and each ephemeral disk (``disk.local``,
    or ``disk.eph0`` to ``disk.eph2``) 0xba at 64 KiB over bases that read
    0x11 (resp. 0x22) over their first ``base_data`` bytes (4 MiB). With
    ``fmt="raw"`` (Nova's ``use_cow_images=False``) the disks are flat
    raw files holding the same data, with no base.
    """
    instance_uuid = str(uuid_lib.uuid4())
    image_id = image_id or str(uuid_lib.uuid4())
    base_dir = os.path.join(instances_path, "_base")
    os.makedirs(base_dir, exist_ok=True)
    directory = os.path.join(instances_path, instance_uuid)
    os.makedirs(directory)
    bases = {}
    xml_disks = []
    for disk_name in disk_names:
        if disk_name == "disk":
            # Nova names cached images after the SHA-1 of the image ID.
            base_name = hashlib.sha1(image_id.encode()).hexdigest()
            pattern, data = BASE_PATTERN, 0xAB
        else:
            base_name = "ephemeral_1_0706d66"
            pattern, data = EPHEMERAL_PATTERN, 0xBA
        path = os.path.join(directory, disk_name)
        if fmt == "raw":
            run("qemu-img", "create", "-q", "-f", "raw", path, disk_size)
            qemu_io(path, "raw", f"write -P {pattern} 0 {base_data}")
            bases[disk_name] = None
        else:
            base = os.path.join(base_dir, base_name)
            if not os.path.exists(base):
                run("qemu-img", "create", "-q", "-f", "raw", base, base_size)
                qemu_io(base, "raw", f"write -P {pattern} 0 {base_data}")
            bases[disk_name] = base
            run(
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                base,
                path,
                disk_size,
            )
        qemu_io(path, fmt, f"write -P {data} 64k 64k")
        xml_disks.append(
            FILE_DISK.format(
                path=saxutils.escape(path),
                target=_DISKS[disk_name][0],
                fmt=fmt,
            )
        )
    if config_drive:
        drive = os.path.join(directory, "disk.config")
        run("qemu-img", "create", "-q", "-f", "raw", drive, MiB)
        xml_disks.append(CONFIG_DRIVE.format(path=saxutils.escape(drive)))
    xml = DOMAIN_XML.format(
        uuid=instance_uuid,
        name=name,
        display_name="server-" + instance_uuid[:8],
        user_id=uuid_lib.uuid4().hex,
        project_id=uuid_lib.uuid4().hex,
        image_id=image_id,
        disks="\n".join(xml_disks),
        channel=AGENT_CHANNEL if agent_channel else "",
    )
    instance = NovaInstance(
        uuid=instance_uuid,
        name=name,
        instances_path=instances_path,
        disk_names=tuple(disk_names),
        fmt=fmt,
        bases=bases,
        log_path=os.path.join(log_dir, name + ".log"),
    )
    instance.dom = conn.defineXML(xml)
    if running:
        instance.dom.create()
    return instance


def redefine_as_nova(inst, nova_xml, start=True):
    """What Nova's hard reboot (or its power-on) does to a domain.

    Nova destroys the domain and defines it again from its own records
    (``nova_xml``, the persistent XML it wrote: Nova's files only), then
    starts it: an overlay the domain ran on is dropped. With
    ``start=False`` the domain is left shut off under Nova's definition.
    """
    conn = inst.dom.connect()
    if inst.dom.isActive():
        inst.dom.destroy()
    inst.dom = conn.defineXML(nova_xml)
    if start:
        inst.dom.create()


def undefine_as_nova(dom):
    """Undefine the way Nova does, and destroy what is left running.

    Nova's flags (no SNAPSHOTS_METADATA, no CHECKPOINTS_METADATA) make
    libvirt refuse when a snapshot or checkpoint is still recorded on the
    domain: this fails the test if the backend left one.
    """
    running = dom.isActive()
    dom.undefineFlags(
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    if running:
        dom.destroy()  # transient now: gone with it
