"""Host-memory (malloc) settings the library sets, in one place: keep freed memory for reuse.

XLA:CPU allocates the temporaries of each run of an executable as one block (`posix_memalign`;
431 MB for the main job's train step) and frees it when the run ends. glibc's malloc serves
every block over 32 MB with a fresh `mmap` (its `mmap_threshold` cannot be raised above 32 MB)
and unmaps it on free, so every train step page-faults and zero-fills that memory anew: the
main job's trainer step takes 113,700 minor page faults per step (`python tools/benchmark.py
--config experiments/fashion_mnist/simclr.py --trainer-only --steps 8`, its
`minor_page_faults_per_step`, with `JAX_SSL_HOST_MALLOC=0`). Served from the heap instead, the
blocks are reused from one step to the next: about 340,000 faults in all while the heap grows
to its working size in the first steps, none after (5,600 per step averaged over 60 timed
steps, 13,500 over 25: the same total), and the step goes 0.401 -> 0.357 s (8 steps).

`apply_defaults()` does that with three `mallopt` calls: one malloc arena (worker threads'
arenas would still `mmap` any block over their 64 MB heap size), no `mmap` for large blocks,
and no trimming of the heap's top (`M_TRIM_THRESHOLD = -1`, as `man mallopt` documents). The
cost: the process keeps its peak heap (freed memory is reused, not returned to the system).

It only matters where XLA runs on the CPU, so `JAX_SSL_HOST_MALLOC` (read here, once, at
`import jax_ssl`) decides: `auto` (the default) applies it on glibc systems without a GPU or TPU
JAX plugin installed, `1` applies it on any glibc system, `0` never. It must run before JAX's
CPU client starts its threads (a thread keeps the arena it first used): importing `jax_ssl`
first, as every entry point does, is enough.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os

# <malloc.h> parameter numbers (stable glibc ABI).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1))

_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm7_plugin",
                        "jax_rocm60_plugin", "libtpu", "jax_plugins.xla_tpu")
_applied = False


def _glibc():
  """glibc's handle, or None on other C libraries (musl, macOS) where mallopt differs."""
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement
  except (OSError, AttributeError):
    return None
  return libc


def _has_accelerator_plugin() -> bool:
  for name in _ACCELERATOR_PLUGINS:
    try:
      if importlib.util.find_spec(name) is not None:
        return True
    except (ImportError, ValueError):
      continue
  return False


def wanted(environ=os.environ) -> bool:
  """Whether `apply_defaults` should change malloc's settings under this environment."""
  mode = environ.get("JAX_SSL_HOST_MALLOC", "auto")
  if mode not in ("auto", "0", "1"):
    raise ValueError(f"JAX_SSL_HOST_MALLOC={mode!r}; use auto, 1 or 0")
  if mode == "0":
    return False
  platforms = environ.get("JAX_PLATFORMS", "")
  return mode == "1" or platforms == "cpu" or (not platforms and not _has_accelerator_plugin())


def apply_defaults(environ=os.environ) -> bool:
  """Sets `SETTINGS` with mallopt when `wanted`; returns whether they are in effect."""
  global _applied
  if not _applied and wanted(environ):
    libc = _glibc()
    if libc is not None:
      _applied = all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)
  return _applied
