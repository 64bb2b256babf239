"""qemu-img invocations, as argument lists.

Both the agent (on files in its own snapshot store) and the privsep
daemon (on Nova's files) use these, so the module sits below both: it
knows nothing of either. The image format is always passed
explicitly: letting qemu-img probe a raw image whose guest wrote a qcow2
header into its first sector would make it follow a "backing file" of
the guest's choosing.

Callers bound every call with :func:`snapmanager_nova.compute.calls.
bounded`; nothing here waits on its own.
"""

from oslo_concurrency import processutils
from oslo_serialization import jsonutils

QEMU_IMG = "qemu-img"
# Messages parsed by nobody, but read by operators in logs: keep them in
# one language.
_ENV = {"LC_ALL": "C", "LANG": "C"}


def _execute(*argv):
    out, _err = processutils.execute(QEMU_IMG, *argv, env_variables=_ENV)
    return out


def info(path, fmt, force_share=False):
    """``qemu-img info`` of one image as a dict.

    ``force_share`` (-U) reads an image a running QEMU holds open; only
    metadata that QEMU does not change under us (a frozen backing layer,
    or sizes) may be trusted from such a read.
    """
    argv = ["info", "--output=json", "-f", fmt]
    if force_share:
        argv.append("-U")
    argv += ["--", path]
    return jsonutils.loads(_execute(*argv))


def rebase_unsafe(path, fmt, backing, backing_format):
    """Point ``path``'s header at ``backing`` without touching data.

    Only right when ``backing`` holds the same bytes as the old backing
    file (a copy of it): that is what makes the quick header-only rebase
    safe.
    """
    _rebase(path, fmt, backing, backing_format, "-u")


def rebase(path, fmt, backing, backing_format):
    """Put ``path`` over ``backing`` so that it still reads the same.

    Where ``path`` holds nothing and the new backing file reads other
    than the old one (nothing: zeros), the old data is written into
    ``path`` first.
    """
    _rebase(path, fmt, backing, backing_format, "-q")


def _rebase(path, fmt, backing, backing_format, mode):
    _execute(
        "rebase",
        mode,
        "-f",
        fmt,
        "-b",
        backing,
        "-F",
        backing_format,
        "--",
        path,
    )


def convert(src, src_format, dst, dst_format, backing=None, fmt=None):
    """Write ``src`` as a new image ``dst``.

    With ``backing`` (a path, its format in ``fmt``) the new image is a
    qcow2 over it that still reads exactly as ``src``: areas ``src`` holds
    as zeros are written as zeros rather than left to the backing file.
    Only the clusters ``src`` itself holds are copied then (qemu-img
    takes ``src``'s own backing chain to read as ``backing`` does): a
    ``src`` with a backing file of its own needs :func:`rebase` instead.
    """
    argv = ["convert", "-q", "-f", src_format, "-O", dst_format]
    if backing:
        argv += ["-B", backing, "-F", fmt]
    argv += ["--", src, dst]
    _execute(*argv)


def commit(path, fmt):
    """Merge the overlay ``path`` into its backing file (offline).

    ``-d`` leaves the overlay as it was (the caller deletes it after),
    so a commit interrupted half way can simply be run again.
    """
    _execute("commit", "-q", "-d", "-f", fmt, "--", path)


def create_over(path, backing, backing_format):
    """A new, empty qcow2 ``path`` over ``backing``, of the same size.

    ``backing`` is written into the header as given: a path relative to
    ``path``'s directory keeps a chain of files valid wherever the
    directory tree is copied.
    """
    _execute(
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        backing_format,
        "-b",
        backing,
        "--",
        path,
    )


def remove_bitmap(path, fmt, name):
    """Delete the persistent dirty bitmap ``name`` from an image no
    QEMU has open (``qemu-img bitmap --remove``)."""
    _execute("bitmap", "--remove", "-f", fmt, "--", path, name)
