"""The host-memory (malloc) setting of the CPU platform: keep freed memory for reuse.

XLA:CPU allocates the temporaries of each run of an executable as one block (`posix_memalign`;
431 MB for the main job's train step) and frees it when the run ends. glibc's malloc serves
every block over 32 MB with a fresh `mmap` (its `mmap_threshold` cannot be raised above 32 MB)
and unmaps it on free, so every train step page-faults and zero-fills that memory anew (the
`minor_page_faults_per_step` of `python tools/benchmark.py --config
experiments/fashion_mnist/simclr.py --trainer-only`). Served from the heap instead, the
blocks are reused from one step to the next: the heap grows to its working size in the
first steps and faults no more after.

`retain_freed_memory()` does that with three `mallopt` calls: one malloc arena (worker
threads' arenas would still `mmap` any block over their 64 MB heap size), no `mmap` for large
blocks, and no trimming of the heap's top (`M_TRIM_THRESHOLD = -1`, as `man mallopt`
documents). The cost: the process keeps its peak heap (freed memory is reused, not returned
to the system). It only matters where XLA runs on the CPU: `jax_ssl.backends.prepare_process`
calls it on the CPU platform only, before JAX's CPU client starts its threads (a thread
keeps the arena it first used). Nothing here runs at import.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# <malloc.h> parameter numbers (stable glibc ABI).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1))

_applied = False


def glibc():
  """glibc's handle, or None on other C libraries (musl, macOS) where mallopt differs."""
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement
  except (OSError, AttributeError):
    return None
  return libc


def retain_freed_memory() -> bool:
  """Sets `SETTINGS` with mallopt (once per process, glibc only); returns whether they are
  in effect."""
  global _applied
  if not _applied:
    libc = glibc()
    if libc is not None:
      _applied = all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)
  return _applied


def retained() -> bool:
  """Whether this process keeps freed memory for reuse (`retain_freed_memory` ran)."""
  return _applied
