"""Root file operations on Nova's instance files and the snapshot store.

Each entrypoint is as narrow as its one use in the qcow2 backend, and
checks its paths against the daemon's own configuration rather than
trusting the caller: Nova's files only under ``[compute] instances_path``,
Snapmanager's only under ``[compute] snapshot_store_path``, and anything
it creates, renames or deletes beside Nova's files must carry a
Snapmanager name (``<name>.snapmanager-<index>`` for an overlay,
``<name>.snapmanager-restore`` for a file being restored). Nothing here
can delete or overwrite a Nova file except by renaming a Snapmanager file
over it, which is what a restore is; the one change made inside a Nova
file is the removal of Snapmanager's own dirty bitmaps
(``snapmanager-<n>``, the incremental mode's change tracking) from a
disk no QEMU has open.

Processes are started with argument lists, never through a shell.
"""

import os
import re
import stat

from oslo_concurrency import processutils

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import privsep
from snapmanager_nova import qemu_img

CONF = sm_conf.CONF

# Files Snapmanager itself puts beside Nova's: overlays and restores.
_OWN_NAME = re.compile(r"^[^/]+\.snapmanager-(?:\d+|restore)$")
_STORE_FILE_MODE = 0o600
# The change-tracking bitmaps of the incremental mode.
_OWN_BITMAP = re.compile(r"^snapmanager-\d+$")


def _refuse(operation, path, reason):
    raise exception.PathNotAllowed(
        operation=operation, path=path, reason=reason
    )


def _inside(operation, path, root_option):
    """``path`` made absolute, refused unless it lies below the root.

    Only the directories are resolved: a final component that is a
    symbolic link is refused, so no operation follows a link someone
    planted under Nova's or Snapmanager's tree.
    """
    root = os.path.realpath(getattr(CONF.compute, root_option))
    absolute = os.path.abspath(path)
    real = os.path.join(
        os.path.realpath(os.path.dirname(absolute)),
        os.path.basename(absolute),
    )
    if real == root or os.path.commonpath([real, root]) != root:
        _refuse(operation, path, f"not below [compute] {root_option}")
    if os.path.islink(real):
        _refuse(operation, path, "it is a symbolic link")
    return real


def _nova_path(operation, path):
    return _inside(operation, path, "instances_path")


def _store_path(operation, path):
    return _inside(operation, path, "snapshot_store_path")


def _own_nova_path(operation, path):
    real = _nova_path(operation, path)
    if not _OWN_NAME.match(os.path.basename(real)):
        _refuse(operation, path, "not a file Snapmanager created")
    return real


def _new_file(operation, real):
    if os.path.lexists(real):
        _refuse(operation, real, "it already exists")
    return real


def _copy(src, dst):
    # reflink where the filesystem shares blocks (XFS, btrfs): the copy
    # is then instant and takes no space until either side changes.
    # Holes stay holes either way.
    processutils.execute(
        "cp", "--reflink=auto", "--sparse=always", "--", src, dst
    )


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _own_like(path, reference, mode=None):
    info = os.stat(reference)
    os.chown(path, info.st_uid, info.st_gid)
    os.chmod(path, mode if mode is not None else stat.S_IMODE(info.st_mode))


@privsep.sys_admin_pctxt.entrypoint
def image_info(path, fmt):
    """qemu-img info of a Nova image, readable while QEMU holds it."""
    real = _nova_path("image info", path)
    return qemu_img.info(real, fmt, force_share=True)


@privsep.sys_admin_pctxt.entrypoint
def file_state(path):
    """[size, mtime in ns] of a Nova file, or None when it is missing.

    Compared before and after a copy to notice a concurrent write.
    """
    try:
        info = os.stat(_nova_path("stat", path))
    except FileNotFoundError:
        return None
    return [info.st_size, info.st_mtime_ns]


@privsep.sys_admin_pctxt.entrypoint
def copy_to_store(src, dst, uid, gid):
    """Copy a Nova file into the store, owned by the agent, private."""
    real_src = _nova_path("copy from", src)
    real_dst = _new_file("copy to", _store_path("copy to", dst))
    _copy(real_src, real_dst)
    os.chown(real_dst, uid, gid)
    os.chmod(real_dst, _STORE_FILE_MODE)
    _fsync(real_dst)


@privsep.sys_admin_pctxt.entrypoint
def adopt_in_store(path, uid, gid):
    """Give the agent a store file that libvirtd wrote (a backup target)."""
    real = _store_path("adopt", path)
    os.chown(real, uid, gid)
    os.chmod(real, _STORE_FILE_MODE)
    _fsync(real)


@privsep.sys_admin_pctxt.entrypoint
def copy_from_store(src, dst, like, mode=None):
    """Copy a stored image beside Nova's files under a Snapmanager name.

    The copy gets the owner, group and (unless ``mode`` is given) the
    permissions of ``like``, the Nova file or directory it will replace
    or join, so Nova and libvirt can use it as if Nova made it.
    """
    real_src = _store_path("copy from", src)
    real_dst = _new_file("copy to", _own_nova_path("copy to", dst))
    real_like = _nova_path("copy owner from", like)
    _copy(real_src, real_dst)
    _own_like(real_dst, real_like, mode)
    _fsync(real_dst)


@privsep.sys_admin_pctxt.entrypoint
def convert_from_store(src, src_format, dst, dst_format, like, backing, fmt):
    """Like :func:`copy_from_store`, converting with qemu-img.

    ``backing`` (format ``fmt``), when given, must be a Nova file: the
    new image becomes a qcow2 over it, as Nova's disks are.
    """
    real_src = _store_path("convert from", src)
    real_dst = _new_file("convert to", _own_nova_path("convert to", dst))
    real_like = _nova_path("convert owner from", like)
    real_backing = _nova_path("backing file", backing) if backing else None
    qemu_img.convert(
        real_src, src_format, real_dst, dst_format, real_backing, fmt
    )
    _own_like(real_dst, real_like)
    _fsync(real_dst)


@privsep.sys_admin_pctxt.entrypoint
def rebase_unsafe(path, fmt, backing, backing_format):
    """Point a restored image at Nova's backing file (header only)."""
    real = _own_nova_path("rebase", path)
    real_backing = _nova_path("backing file", backing)
    qemu_img.rebase_unsafe(real, fmt, real_backing, backing_format)
    _fsync(real)


@privsep.sys_admin_pctxt.entrypoint
def rebase_onto_nova_base(path, fmt, backing, backing_format):
    """Put a restored image over Nova's backing file, reading the same.

    For an image converted from a chain of stored files, which
    ``convert -B`` would not copy whole (see qemu_img.convert).
    """
    real = _own_nova_path("rebase", path)
    real_backing = _nova_path("backing file", backing)
    qemu_img.rebase(real, fmt, real_backing, backing_format)
    _fsync(real)


@privsep.sys_admin_pctxt.entrypoint
def commit_overlay(path, fmt):
    """Merge a Snapmanager overlay into the Nova disk below it (offline)."""
    real = _own_nova_path("commit", path)
    qemu_img.commit(real, fmt)
    backing = qemu_img.info(real, fmt).get("full-backing-filename")
    if backing:
        _fsync(backing)


@privsep.sys_admin_pctxt.entrypoint
def remove_bitmaps(path, fmt, names):
    """Drop Snapmanager's dirty bitmaps from a Nova disk no QEMU has open.

    Only bitmaps named ``snapmanager-<index>`` (the incremental mode's
    change tracking) can be removed; Nova's data is not touched.
    """
    real = _nova_path("remove bitmap", path)
    for name in names:
        if not _OWN_BITMAP.match(name):
            _refuse("remove bitmap", path, f"{name!r} is not ours")
    for name in names:
        qemu_img.remove_bitmap(real, fmt, name)
    _fsync(real)


@privsep.sys_admin_pctxt.entrypoint
def replace(src, dst):
    """Atomically rename a Snapmanager file over a Nova file.

    Both must be in the same directory, so the rename is one atomic step
    on one filesystem; the directory is synced so the new name survives
    a power cut.
    """
    real_src = _own_nova_path("rename from", src)
    real_dst = _nova_path("rename to", dst)
    if os.path.dirname(real_src) != os.path.dirname(real_dst):
        _refuse("rename", src, "not in the same directory as " + dst)
    os.rename(real_src, real_dst)
    _fsync(os.path.dirname(real_dst))


@privsep.sys_admin_pctxt.entrypoint
def remove(path):
    """Delete a Snapmanager file beside Nova's; gone already is fine."""
    real = _own_nova_path("remove", path)
    try:
        os.unlink(real)
    except FileNotFoundError:
        return False
    _fsync(os.path.dirname(real))
    return True


@privsep.sys_admin_pctxt.entrypoint
def list_own_files(directory):
    """Names of Snapmanager files in one of Nova's directories."""
    real = _nova_path("list", directory)
    try:
        names = os.listdir(real)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if _OWN_NAME.match(name))
