"""The conductor's schedule clock and the snapshot fan-out it starts.

``python -m benchmarks.conductor`` (see benchmarks/README.md) measures
what one tick of the clock costs as the database grows, against the
same tick with a thousand instances, and how long N snapshots of
RBD-backed instances take from the tick to being recorded, through real
conductor and agent processes, against a plain librbd loop over the
same images.
"""

import warnings

# oslo.privsep imports eventlet at import time even in threading mode;
# its deprecation notice says nothing about this benchmark.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
