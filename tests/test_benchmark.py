"""The benchmark's memory accounting (its speed figures live in the
benchmark itself; tests/test_real_data.py runs it on the real copy)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import throughput  # noqa: E402

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/smaps_rollup").exists(),
    reason="PSS is read from Linux's /proc/<pid>/smaps_rollup")

HOLD = """
import sys, time
block = bytearray(200 * 2**20)      # 200 MB, written so that it is resident
for i in range(0, len(block), 4096):
    block[i] = 1
print("ready", flush=True)
time.sleep(60)
"""


def test_tree_memory_counts_the_children():
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys; "
         f"subprocess.run([sys.executable, '-c', {HOLD!r}])"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        total = throughput._tree_pss(parent.pid)
        assert 200 < total < 400, total
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert throughput._tree_pss(parent.pid) == 0
