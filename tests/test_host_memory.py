"""The library's malloc settings (jax_ssl.host_memory): with them XLA:CPU's per-run temporary
block is reused from one run to the next (no page faults); without them every run faults it in
anew; bad values of JAX_SSL_HOST_MALLOC are refused with the fix named."""

import json
import os
import subprocess
import sys

import pytest

from jax_ssl import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Child: import jax_ssl first (as every entry point does), run a jitted function whose
# temporaries are one ~64 MB block (a [4096, 4096] f32 product feeding a second product), and
# report the minor page faults per run after 10 runs of warm-up: the least over 5 windows of 4
# runs (the heap may still grow now and then while its free blocks settle).
CHILD = r"""
import json, resource
import jax_ssl
import jax, jax.numpy as jnp
a = jnp.ones((4096, 64)); b = jnp.ones((64, 4096)) / 64
f = jax.jit(lambda a, b: jnp.tanh(a @ b) @ a)
for _ in range(10):
  jax.block_until_ready(f(a, b))
windows = []
for _ in range(5):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(4):
    jax.block_until_ready(f(a, b))
  windows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
faults = min(windows)
print(json.dumps({"faults_per_run": faults, "applied": jax_ssl.host_memory.apply_defaults()}))
"""


def _child(mode):
  environ = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, JAX_SSL_HOST_MALLOC=mode)
  proc = subprocess.run([sys.executable, "-c", CHILD], env=environ, capture_output=True,
                        text=True, timeout=300, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(host_memory._glibc() is None, reason="mallopt settings are glibc's")
def test_temporaries_are_reused_instead_of_faulted_in_every_run():
  pages = 4096 * 4096 * 4 // 4096  # the dot's output: 16384 pages of 4 KiB
  on, off = _child("1"), _child("0")
  assert on["applied"] and not off["applied"]
  assert off["faults_per_run"] > 0.9 * pages, off
  assert on["faults_per_run"] < 0.05 * pages, on


def test_mode_is_read_from_the_environment():
  assert not host_memory.wanted({"JAX_SSL_HOST_MALLOC": "0"})
  assert host_memory.wanted({"JAX_SSL_HOST_MALLOC": "1", "JAX_PLATFORMS": "tpu"})
  assert host_memory.wanted({"JAX_PLATFORMS": "cpu"})
  assert not host_memory.wanted({"JAX_PLATFORMS": "cuda"})
  with pytest.raises(ValueError, match="use auto, 1 or 0"):
    host_memory.wanted({"JAX_SSL_HOST_MALLOC": "yes"})
