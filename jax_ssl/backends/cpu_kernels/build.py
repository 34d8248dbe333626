"""Builds `conv2d.cc` into a shared library on first use and registers its XLA FFI targets.

First use is the first trace of a convolution the `cpu_kernels` backend would run on its
kernels (conv.py `applies`: on the CPU, one device unless `every_op`): selecting the
backend, importing the package or running on another platform never invokes the compiler. The library is compiled with the machine's C++ compiler
(`$CXX`, else `g++`) for the CPU it runs on (`-march=native`), against the FFI headers that
ship with jaxlib (`jax.ffi.include_dir()`), into a cache directory (`$JAX_SSL_KERNEL_CACHE`,
else `~/.cache/jax_ssl/kernels`) under a name that hashes the source, the compiler, the
jaxlib version and the CPU, so a change of any of them rebuilds it (logged with its time).
`JAX_SSL_KERNEL_CACHE` only moves that cache; it changes no numbers. Without a compiler, or
when compiling fails, `load()` returns None once with a one-line warning and the
convolutions stay on XLA's own path: nothing else changes.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time

import jax
import jaxlib

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv2d.cc")
TARGETS = ("JaxSslConvForward", "JaxSslConvInputGrad", "JaxSslConvWeightGrad")


@functools.lru_cache(maxsize=1)
def _cpu_id() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      lines = [line for line in f if line.startswith(("model name", "flags"))]
    return "".join(sorted(set(lines)))
  except OSError:
    return platform.processor() or platform.machine()


def has_avx512() -> bool:
  """Whether this CPU has AVX-512 (the instruction set the kernels were tuned and measured
  on; elsewhere they still build and run, but backend "auto" selects `xla` and the measured
  rule of conv.py leaves convolutions to XLA)."""
  return "avx512f" in _cpu_id().split()


def has_avx2_only() -> bool:
  """Whether this CPU has AVX2 but not AVX-512 (e.g. the AMD EPYC of Zen 3): the other CPU
  the backend was measured on, where its rules take no kernel (conv.py `choose`)."""
  flags = _cpu_id().split()
  return "avx2" in flags and "avx512f" not in flags


def compiler() -> str | None:
  """The C++ compiler's path (`$CXX`, else `g++`), found without running it; None if absent."""
  return shutil.which(os.environ.get("CXX", "g++"))


def library_path(compiler: str) -> str:
  cache = os.environ.get("JAX_SSL_KERNEL_CACHE",
                         os.path.join(os.path.expanduser("~"), ".cache", "jax_ssl", "kernels"))
  version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
  key = hashlib.sha256()
  for part in (open(SOURCE, "rb").read(), version.encode(), jaxlib.__version__.encode(),
               _cpu_id().encode()):
    key.update(part)
  return os.path.join(cache, f"jax_ssl_kernels_{key.hexdigest()[:16]}.so")


def compile_library(compiler: str, path: str) -> None:
  """Compiles SOURCE to `path` (written to a temporary name, then renamed: concurrent
  builders never load a half-written file)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
  os.close(fd)
  try:
    subprocess.run([compiler, "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w",
                    "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp],
                   check=True, capture_output=True, text=True)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@functools.lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
  """The compiled kernels with their FFI targets registered for the CPU, or None (warned once)."""
  cxx = compiler()
  if cxx is None:
    logging.warning("jax_ssl kernels: no C++ compiler (g++) found; convolutions use XLA's "
                    "own CPU path (install g++ for the faster kernels)")
    return None
  try:
    path = library_path(cxx)
    if not os.path.exists(path):
      start = time.perf_counter()
      compile_library(cxx, path)
      logging.info("jax_ssl kernels: built %s in %.1f s", path, time.perf_counter() - start)
    library = ctypes.cdll.LoadLibrary(path)
  except (OSError, subprocess.CalledProcessError) as error:
    detail = getattr(error, "stderr", "") or str(error)
    logging.warning("jax_ssl kernels: building %s failed (%s); convolutions use XLA's own CPU "
                    "path", SOURCE, detail.strip().splitlines()[-1] if detail.strip() else error)
    return None
  for name in TARGETS:
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, name)), platform="cpu")
  return library
