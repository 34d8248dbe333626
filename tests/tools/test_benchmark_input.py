"""tools/benchmark_input.py's CPU accounting: the cost per core counts the worker processes."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools"))
import benchmark_input  # noqa: E402

_BUSY_CHILD = """
import time
end = time.process_time() + 0.6
while time.process_time() < end:
  pass
print("busy done", flush=True)
time.sleep(30)
"""


def test_process_tree_cpu_seconds_counts_living_descendants():
  """A child that has burnt 0.6 s of CPU (and now sleeps) adds those 0.6 s to this process's
  tree, and is its own tree's figure; a pid above Linux's limit (2^22) has none."""
  before = benchmark_input.process_tree_cpu_seconds()
  child = subprocess.Popen([sys.executable, "-c", _BUSY_CHILD], stdout=subprocess.PIPE, text=True)
  try:
    assert child.stdout.readline().strip() == "busy done"
    own = benchmark_input.process_tree_cpu_seconds(child.pid)
    assert 0.55 <= own < 3.0  # 0.6 s of busy loop plus the interpreter's start
    tree = benchmark_input.process_tree_cpu_seconds()
    assert tree - before >= own - 0.02  # the child's time is in the tree
    assert benchmark_input.process_tree_cpu_seconds(2**22 + 1) == 0.0  # no such process
  finally:
    child.kill()
    child.wait()
  time.sleep(0.05)
  # Once the child is gone, its time leaves the living tree.
  assert benchmark_input.process_tree_cpu_seconds() < tree
