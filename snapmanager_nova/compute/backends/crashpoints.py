"""Named points of the qcow2 backend where a crash is worth testing.

:func:`reached` does nothing. The functional tests replace it in a child
process that takes a snapshot, so that the child SIGKILLs itself at
exactly one point (``overlay-created``, ``copy-half``, ``commit-started``,
``commit-ready``, ``backup-started``; in the ``incremental`` mode also
``checkpoint-created`` and ``incremental-published``; in a delete that
merges a snapshot into its child ``merge-committed`` and
``merge-renamed``) and recovery can be tested from every state a
``kill -9`` of the agent can leave behind.
"""


def reached(step):
    """Called at each crash point; a no-op outside the crash tests."""
