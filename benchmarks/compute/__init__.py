"""The compute agent's backends against the raw calls they are made of.

``python -m benchmarks.compute`` (see benchmarks/README.md) snapshots,
restores and deletes with the qcow2 backend (``external`` and
``backup`` modes) and the RBD backend, for one disk and for four, and
does the same with bare libvirt, qemu-img and librbd calls in the same
run: the ratio between the two is what the agent's own work (checks,
store and manifests, privsep, bounded calls, crash-safety marks) costs.
"""

import warnings

# oslo.privsep imports eventlet at import time even in threading mode;
# its deprecation notice says nothing about this benchmark.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
