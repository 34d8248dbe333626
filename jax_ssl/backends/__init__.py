"""Speed backends: where the models get their convolution and normalisation layers.

A `Backend` is two factories, the only layers of the ResNets whose fastest implementation
depends on the machine:

  * `conv(in_features, out_features, kernel_size, **kwargs) -> nnx.Conv`, with `nnx.Conv`'s
    constructor signature;
  * `batch_norm(num_features, **kwargs) -> models.batch_norm.BatchNorm`, with that class's
    constructor signature (nnx.BatchNorm's, plus `compute_dtype`; its call takes the
    block's `residual` and `relu`).

Two backends exist (docs/backends.md):

  * `xla` (the default of every model): `nnx.Conv` and the plain BatchNorm, i.e. XLA's own
    convolution and normalisation on every platform;
  * `cpu_kernels` (the plug-in `jax_ssl.backends.cpu_kernels`): C++ convolution kernels and
    Winograd F(4x4, 3x3) through the XLA FFI, and BatchNorm fused with the residual add and
    ReLU in one custom VJP: the measured fastest path on a 2-core AVX-512 host.

`select(name)` turns `config.backend` ("auto", "xla" or "cpu_kernels") into a Backend in the
build step (`config.build_backbone`, `config.build_model`), which hands it to the models;
`auto` is `cpu_kernels` on the CPU platform when the kernels apply to this machine (an
AVX-512 CPU, which they were tuned and measured on, and a C++ compiler to build them), else
`xla`. Nothing is built by selecting: g++ runs the first time a `cpu_kernels` convolution is
traced on a single CPU device (jax_ssl/backends/cpu_kernels/build.py). Layers built by code
that takes no backend (the methods' heads) take `current()`, which `use(backend)` scopes.

`prepare_process(name)` is the process-wide part (the malloc setting and the XLA:CPU flag of
the CPU plug-in): the entry points call it before JAX starts. Importing `jax_ssl`, or this
module, changes no process state.

How to add a backend: a subpackage exposing a `Backend` (e.g. a `pallas_gpu` with Pallas
convolutions), a name in `NAMES` and a branch in `select`; its tests check its values and
gradients against the `xla` backend's (tests/backends/).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.metadata
import os
from typing import Callable, Iterator

import jax
from flax import nnx

from jax_ssl.errors import ConfigError
from jax_ssl.models import batch_norm as batch_norm_lib

NAMES = ("auto", "xla", "cpu_kernels")

# JAX's platform aliases (jax/_src/xla_bridge.py `_platform_aliases`).
_PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu", "oneapi": "gpu"}


@dataclasses.dataclass(frozen=True)
class Backend:
  """The layer factories the models build their convolutions and BatchNorms with."""

  name: str
  conv: Callable[..., nnx.Conv]
  batch_norm: Callable[..., batch_norm_lib.BatchNorm]


XLA = Backend("xla", nnx.Conv, batch_norm_lib.BatchNorm)

_CURRENT: contextvars.ContextVar[Backend] = contextvars.ContextVar("jax_ssl_backend",
                                                                  default=XLA)


@contextlib.contextmanager
def use(backend: Backend) -> Iterator[Backend]:
  """Layers built inside this block take `backend` where their builder is given none: the
  methods' heads (`make_heads` takes no backend; their BatchNorms come from
  `models.resnet.batch_norm`), built by `config.build_model` inside `use(the backbone's)`.
  Read when a layer is constructed, never when it is traced, as `jax.sharding.use_mesh`
  scopes a mesh."""
  token = _CURRENT.set(backend)
  try:
    yield backend
  finally:
    _CURRENT.reset(token)


def current() -> Backend:
  """The backend of layers built now: `use`'s, else `XLA`."""
  return _CURRENT.get()


def _check_name(name: str) -> None:
  if name not in NAMES:
    raise ConfigError(f"backend={name!r}; use 'auto', 'xla' or 'cpu_kernels'")


def _configured_platforms() -> str:
  """`jax_platforms` as configured (the JAX_PLATFORMS environment variable is its default)."""
  return jax.config.jax_platforms or ""


def _accelerator_plugins() -> list[str]:
  """Installed distributions that give JAX a GPU or TPU platform: the CUDA / ROCm PJRT
  plug-ins, libtpu, and anything registered under the `jax_plugins` entry points, which JAX
  scans at start-up (jax/_src/xla_bridge.py `discover_pjrt_plugins`)."""
  found = []
  for dist in importlib.metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    if name.startswith(("jax-cuda", "jax-rocm", "libtpu")):
      found.append(name)
  found += [entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")]
  return found


def default_platform() -> str:
  """The platform JAX will compute on by default ("cpu", "gpu", "tpu", ...), decided without
  initialising JAX's backends (which would fix XLA_FLAGS before `prepare_process` sets them).

  The rule: the first entry of `jax_platforms` (JAX_PLATFORMS, or `jax.config.update`), as
  JAX takes the first listed platform as the default, with JAX's aliases (cuda, rocm ->
  gpu); without one, "tpu" if libtpu is installed, "gpu" if another accelerator plug-in is
  (JAX prefers an accelerator to the CPU when one starts); else "cpu". A plug-in installed
  on a machine without its device makes JAX fall back to the CPU while this says "gpu": the
  CPU settings are then left out (slower, never wrong); JAX_PLATFORMS=cpu decides it."""
  configured = _configured_platforms().split(",")[0].strip().lower()
  if configured:
    return _PLATFORM_ALIASES.get(configured, configured)
  plugins = _accelerator_plugins()
  if any(name.startswith("libtpu") for name in plugins):
    return "tpu"
  return "gpu" if plugins else "cpu"


def select(name: str, platform: str | None = None) -> Backend:
  """The Backend `config.backend` names; `platform` (None: `default_platform()`) resolves
  "auto". Raises ConfigError (one line) for an unknown name."""
  _check_name(name)
  if name == "xla":
    return XLA
  if name == "auto" and (platform or default_platform()) != "cpu":
    return XLA
  # Imported here: the xla backend never loads the plug-in (nor builds its kernels).
  from jax_ssl.backends import cpu_kernels  # pylint: disable=g-import-not-at-top
  if name == "auto" and not cpu_kernels.applies_to_this_machine():
    return XLA
  return cpu_kernels.backend()


@dataclasses.dataclass(frozen=True)
class ProcessSettings:
  """What `prepare_process` did: the platform it decided on, whether malloc keeps freed
  memory for reuse, and XLA_FLAGS as XLA will read them."""

  platform: str
  host_malloc_retained: bool
  xla_flags: str


def prepare_process(name: str, platform: str | None = None) -> ProcessSettings:
  """The process-wide settings of the speed backends; call it in an entry point's main,
  before anything starts JAX's backends (jax.devices(), a computation, distributed
  initialisation): XLA reads XLA_FLAGS and the CPU client starts its threads then.

  `name` (config.backend) is checked first, so a misspelt backend fails in one line before
  anything else happens. On the CPU platform (`default_platform()`, or `platform`) it then
  keeps freed host memory for reuse (mallopt, jax_ssl/backends/cpu_kernels/host_memory.py)
  and routes XLA:CPU's convolutions to Eigen (--xla_cpu_experimental_ynn_fusion_type,
  jax_ssl/backends/cpu_kernels/xla_flags.py), whatever the backend: both were measured
  faster for XLA's own convolutions as well as the kernels, and a process that computes on
  the CPU has one host allocator and one XLA:CPU for both. On any other platform it does
  neither: malloc would only pin the host's peak memory, and the flag is an XLA:CPU flag
  that an accelerator's XLA does not know (an unknown flag aborts the process when a
  backend starts, e.g. after a future jaxlib renames it)."""
  _check_name(name)
  platform = platform or default_platform()
  if platform != "cpu":
    return ProcessSettings(platform, False, os.environ.get("XLA_FLAGS", ""))
  from jax_ssl.backends.cpu_kernels import host_memory, xla_flags  # pylint: disable=g-import-not-at-top
  return ProcessSettings(platform, host_memory.retain_freed_memory(), xla_flags.apply())


_XLA_CONVOLUTIONS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "jax_ssl_xla_convolutions", default=False)


@contextlib.contextmanager
def xla_convolutions() -> Iterator[None]:
  """Functions traced inside this block take XLA's own convolution whatever their model's
  backend (as jax.default_matmul_precision, it applies to traces made inside it, so jit a
  new function object). For XLA's cost analysis, which counts no FLOPs in a custom call
  (jax_ssl/perf.py, tools/benchmark.py): the same arithmetic, counted."""
  token = _XLA_CONVOLUTIONS.set(True)
  try:
    yield
  finally:
    _XLA_CONVOLUTIONS.reset(token)


def xla_convolutions_forced() -> bool:
  """Whether the current trace is inside `xla_convolutions()` (read by the plug-ins)."""
  return _XLA_CONVOLUTIONS.get()
