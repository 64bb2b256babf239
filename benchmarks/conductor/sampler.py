"""Where a service's CPU goes: a sampling profiler for the fan-out.

``python -m benchmarks.conductor.sampler OUT BINARY ARGS...`` runs the
console script ``BINARY`` (snapmanager-conductor, snapmanager-compute)
in this process, with a thread that every :data:`INTERVAL` seconds looks
at every other thread's CPU time (``/proc/self/task/<tid>/stat``) and,
for each thread that used CPU since the last look, counts the functions
on its Python stack. cProfile sees only the thread that enables it, and
the services work on pools of threads; a thread waiting on a queue, a
socket or a librbd call does not use CPU and is not counted, so the
counts are where the Python threads spent CPU, not where they waited.

At exit (the benchmark stops the services with SIGTERM, which the
services turn into a clean exit) it writes ``OUT``: the samples' total,
then the functions by the share of samples they were on the stack in
(inclusive) and at its top (self).
"""

import atexit
import collections
import os
import pathlib
import sys
import threading
from importlib import metadata

INTERVAL = 0.005
# Looks between two writes of the file while the service runs (~1 s).
WRITE_EVERY = 200
TOP = 25


class Sampler:
    def __init__(self, out=None):
        self.out = out
        self.inclusive = collections.Counter()
        self.own = collections.Counter()
        self.samples = 0
        self._cpu = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        me = threading.get_ident()
        looks = 0
        while not self._stop.wait(INTERVAL):
            looks += 1
            if self.out is not None and looks % WRITE_EVERY == 0:
                # Also written now and then: a service killed because
                # it did not stop in time still leaves its samples.
                self._write(self.out)
            frames = sys._current_frames()
            for thread in threading.enumerate():
                ident = thread.ident
                if ident == me or ident not in frames:
                    continue
                if not self._used_cpu(thread.native_id):
                    continue
                self._count(frames[ident])

    def _used_cpu(self, tid):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return False
        ticks = int(fields[11]) + int(fields[12])
        before = self._cpu.get(tid)
        self._cpu[tid] = ticks
        return before is not None and ticks > before

    def _count(self, frame):
        self.samples += 1
        seen = set()
        top = True
        while frame is not None:
            code = frame.f_code
            key = (code.co_filename, code.co_firstlineno, code.co_name)
            if top:
                self.own[key] += 1
                top = False
            if key not in seen:
                self.inclusive[key] += 1
                seen.add(key)
            frame = frame.f_back

    def write(self):
        """Stop sampling and write the counts to ``out`` (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._write(self.out)

    def _write(self, path):
        lines = [f"samples {self.samples}"]
        ours = collections.Counter(
            {
                key: count
                for key, count in self.inclusive.items()
                if "snapmanager_nova" in key[0]
            }
        )
        counters = (
            ("inclusive", self.inclusive),
            ("inclusive, Snapmanager's own functions", ours),
            ("self", self.own),
        )
        for title, counter in counters:
            lines.append(f"-- {title}")
            for key, count in counter.most_common(TOP):
                share = 100.0 * count / max(self.samples, 1)
                lines.append(f"{share:5.1f}% {_short(key)}")
        with open(path, "w") as out:
            out.write("\n".join(lines) + "\n")


# The source tree this file is in: its paths are shown relative to it.
SOURCE_TOP = str(pathlib.Path(__file__).resolve().parents[2]) + os.sep


def _short(key):
    filename, line, name = key
    for marker in ("site-packages/", SOURCE_TOP, "lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{name} ({filename}:{line})"


def main():
    out, binary, *args = sys.argv[1:]
    (entry,) = metadata.entry_points(group="console_scripts", name=binary)
    sampler = Sampler(out)
    atexit.register(sampler.write)
    sys.argv = [binary, *args]
    sampler.start()
    try:
        sys.exit(entry.load()())
    finally:
        sampler.write()


if __name__ == "__main__":
    main()
