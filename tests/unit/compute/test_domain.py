"""What the agent reads from Nova's domain XML, on XML alone."""

from snapmanager_nova.compute import domain

UUID = "4d7c2a5e-51a3-4c53-9a39-1f0e9b7d2c11"
PROJECT = "8f5a3e0b2c1d4e6f9a7b5c3d1e2f4a6b"
USER = "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6"

NOVA_XML = f"""\
<domain type='kvm' id='3'>
  <name>instance-0000002a</name>
  <uuid>{UUID}</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="34.0.0"/>
      <nova:name>web-1</nova:name>
      <nova:owner>
        <nova:user uuid="{USER}">alice</nova:user>
        <nova:project uuid="{PROJECT}">web</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/{UUID}/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/{UUID}/disk.local'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/{UUID}/disk.swap'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.x-lun-1'/>
      <target dev='vdd' bus='virtio'/>
      <serial>0b6c1f0e-3e0f-4a51-a8f5-0c9b6f0d9e21</serial>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback'/>
      <auth username='cinder'>
        <secret type='ceph' uuid='5b67401f-dc5e-496a-8456-9a5dc40e7d3c'/>
      </auth>
      <source protocol='rbd' name='volumes/volume-0b6c'>
        <host name='10.0.0.9' port='6789'/>
      </source>
      <target dev='vde' bus='virtio'/>
      <serial>0b6c</serial>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='/var/lib/nova/instances/{UUID}/disk.config'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/ga.sock'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
  </devices>
</domain>
"""

RBD_XML = f"""\
<domain type='kvm'>
  <name>instance-0000002b</name>
  <uuid>{UUID}</uuid>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>
      <auth username='nova'>
        <secret type='ceph' uuid='5b67401f-dc5e-496a-8456-9a5dc40e7d3c'/>
      </auth>
      <source protocol='rbd' name='vms/{UUID}_disk'>
        <host name='10.0.0.9' port='6789'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='vms/{UUID}_disk.local'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


def test_file_backed_instance():
    instance = domain.parse_domain_xml(
        NOVA_XML, skip_disks=("disk.config", "disk.swap")
    )
    assert instance.uuid == UUID
    assert instance.domain_name == "instance-0000002a"
    assert instance.project_id == PROJECT
    assert instance.user_id == USER
    assert instance.display_name == "web-1"
    assert instance.backend == domain.BACKEND_FILE
    assert instance.has_agent_channel
    assert [(d.target, d.name, d.format) for d in instance.disks] == [
        ("vda", "disk", "qcow2"),
        ("vdb", "disk.local", "qcow2"),
    ]
    assert instance.disks[0].path == f"/var/lib/nova/instances/{UUID}/disk"


def test_swap_is_skipped_and_volumes_are_reported():
    instance = domain.parse_domain_xml(
        NOVA_XML, skip_disks=("disk.config", "disk.swap")
    )
    assert [d.name for d in instance.skipped] == ["disk.swap"]
    assert [(v.target, v.serial) for v in instance.volumes] == [
        ("vdd", "0b6c1f0e-3e0f-4a51-a8f5-0c9b6f0d9e21"),
        ("vde", "0b6c"),
    ]


def test_config_drive_cdrom_is_never_a_disk():
    instance = domain.parse_domain_xml(NOVA_XML, skip_disks=())
    names = [d.name for d in instance.disks + instance.skipped]
    assert "disk.config" not in names
    assert "disk.swap" in names  # only skipped when configured


def test_rbd_backed_instance():
    instance = domain.parse_domain_xml(RBD_XML, skip_disks=("disk.swap",))
    assert instance.backend == domain.BACKEND_RBD
    assert [(d.pool, d.image, d.name) for d in instance.disks] == [
        ("vms", f"{UUID}_disk", "disk"),
        ("vms", f"{UUID}_disk.local", "disk.local"),
    ]
    assert instance.disks[0].user == "nova"
    assert instance.disks[1].user is None
    assert instance.project_id is None  # no Nova metadata in this XML
    assert not instance.has_agent_channel


def test_an_overlay_still_counts_as_the_instances_file_disk():
    # After a crash with an overlay active the XML names the overlay: the
    # instance is still file-backed, so the qcow2 backend's recovery
    # gets it.
    xml = NOVA_XML.replace(
        f"instances/{UUID}/disk'", f"instances/{UUID}/disk.snapmanager-7'"
    )
    instance = domain.parse_domain_xml(xml, skip_disks=("disk.swap",))
    assert instance.backend == domain.BACKEND_FILE
    assert instance.disks[0].name == "disk.snapmanager-7"


def test_file_outside_the_instance_directory_is_a_volume():
    xml = NOVA_XML.replace(
        f"/var/lib/nova/instances/{UUID}/disk.local",
        "/var/lib/nova/mnt/6f1e/volume-0b6c",
    )
    instance = domain.parse_domain_xml(xml, skip_disks=("disk.swap",))
    assert [d.name for d in instance.disks] == ["disk"]
    assert "vdb" in [v.target for v in instance.volumes]
