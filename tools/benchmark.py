r"""Benchmarks a config's train step (and a PyTorch peer of the same model when torch imports).

  python tools/benchmark.py --config experiments/fashion_mnist/simclr.py [--steps 15] [--compare-torch]

Reports, for the config's global batch on this machine's devices:
  * trainer step: the jitted train step exactly as the trainer runs it (on-device views +
    forward + backward + optimizer), its compile time, XLA's FLOP count, seconds per step
    and images/s (`--set online_probe=True`: with the online linear probe); the model
    FLOPs the trainer counts for its `mfu` (jax_ssl/perf.py step_flops) and the MFU against
    perf's peak for the device kind and model.dtype (on a CPU, the measured matmul rate);
    peak memory: the device's `memory_stats()` "peak_bytes_in_use" after the timed steps
    where the backend keeps it (GPU, TPU), else XLA's buffer assignment of the step.
    `--steps N --warmup W`: W untimed steps after the compile, then N timed back to back
    (a few hundred on an accelerator). Video configs (a video dataset or a 3-D CNN) get
    synthetic clips shaped as the trainer's video batches: {"clips": one uint8 [B, T, F, F,
    C] per view, "speeds": int32 [B, V]} (T = clips.num_frames, F = `--frame-size`);
    `--layout trainer` gives an ImageNet config the trainer's host views instead of whole
    images;
  * model step: forward + backward + optimizer on pre-made views (no augmentation), the
    part a PyTorch training loop spends in the model; the method's global views only (no
    multi-crop local views: the views its PyTorch peer computes), so on a multi-crop config
    it is a part of the trainer step, not all of it (the main job: 0.60 s against 1.78 s on
    a 2-vCPU AMD EPYC without AVX-512, the 4 local crops the rest);
  * torch model step (with --compare-torch): the same architecture written with plain
    torch.nn, same views shape, same optimizer family, `torch.set_num_threads` = CPU count;
    the JAX and PyTorch model steps then alternate for `--rounds` rounds and their medians
    give the ratio.
Speed is reported, never asserted.

  python tools/benchmark.py --config experiments/imagenet/dino_vit_small.py --hlo [--set ...]

`--hlo` compiles the trainer's step for the current devices and never runs it: it prints the
bytes each collective kind (all-reduce, all-gather, all-to-all, collective-permute,
reduce-scatter) leaves on each device per step and the convolutions and dot products by
dtype, read from the compiled HLO text (`compiled.as_text()`; loops counted by their trip
count), then one JSON line {"collective_bytes": {...}, "collective_counts": {...},
"ops_by_dtype": {"convolution": {"bf16": 158}, "dot": {...}}, "ops_by_dtype_lowered": {...}}
(`_lowered`: the program JAX hands XLA; XLA:CPU computes bfloat16 convolutions in float32,
so on CPU only the lowered counts show bfloat16). Force several CPU devices with
XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jax_ssl import backends
from jax_ssl import config as config_lib
from jax_ssl import perf
from jax_ssl import sharding
from jax_ssl.methods.spec import StepContext, with_modules
from jax_ssl.state import create_train_state
from jax_ssl.step import make_train_step


def load_config(path: str, settings=(), backend: str | None = None):
  """The typed experiment of PATH[:ARG] with `settings` ("KEY=VALUE", as the trainer's
  --config.KEY=VALUE) and the backend applied."""
  from jax_ssl.config import load as config_load  # pylint: disable=g-import-not-at-top
  config = config_load.apply_overrides(
      config_load.load_experiment(path),
      config_load.split_overrides([f"--config.{item}" for item in settings])[1]
      + ([("backend", backend)] if backend else []))
  return config_lib.Experiment.from_config(config)


FAULT_STEPS = 3  # steps after the timed ones over which page faults are counted


def _time(fn, steps: int) -> float:
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def _flops_without_kernels(step, jit_kwargs, *args) -> float | None:
  """XLA's FLOP count of `step(*args)` compiled with XLA's own convolutions: its cost
  analysis does not see into the library's convolution kernels (custom calls), and the
  arithmetic is the same either way (Winograd's fewer multiplies are counted as a direct
  convolution's FLOPs, as for PyTorch). (A new function object, so no cached trace is reused.)"""
  with backends.xla_convolutions():
    jitted = jax.jit(lambda *a: step(*a), **jit_kwargs)  # noqa: PLW0108
    cost = jitted.lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and "flops" in cost else None


# Datasets whose records are videos ({"clips", "speeds"} batches; pipeline.is_video of their
# TFDS info) and whose images vary in size (host views; pipeline.is_variable_size), by the
# names experiment files use: the benchmark never reads the dataset itself.
VIDEO_DATASETS = ("kinetics400", "ucf101", "moving_fashion_mnist",
                  "moving_fashion_mnist_two_objects")
VARIABLE_SIZE_DATASETS = ("imagenet2012",)
LAYOUTS = ("image", "views", "clips")


def is_video_config(config) -> bool:
  """Whether `config` trains on videos: a video dataset or a 3-D CNN backbone."""
  from jax_ssl.models import video  # pylint: disable=g-import-not-at-top
  return config.dataset.name in VIDEO_DATASETS or config.model.backbone in video.BACKBONES


def in_channels_of(config) -> int:
  """The channels of the config's dataset (1: the Fashion-MNIST family, else 3)."""
  return 1 if config.dataset.name.startswith(("fashion_mnist", "moving_fashion_mnist")) else 3


def input_layout(config) -> str:
  """The batch the trainer's step gets for `config` (pipeline.step_inputs): "clips" (a video
  dataset: one uint8 [B, T, H, W, C] clip per view and the clips' speeds), "views" (a
  variable-size dataset with dataset.host_crops: one host-cropped uint8 [B, S_v, S_v, C] per
  view) or "image" (uint8 [B, H, W, C], the views made on device)."""
  if is_video_config(config):
    return "clips"
  if config.dataset.host_crops and config.dataset.name in VARIABLE_SIZE_DATASETS:
    return "views"
  return "image"


def default_frame_size(config) -> int:
  """The stored frame side of a video config's synthetic clips: dataset.image_size, or (0:
  the stored size) Moving Fashion-MNIST's 64 px, or for a dataset whose frames are resized
  when it is built (video folders: Kinetics, UCF101) the view's side x 8/7 (256 px frames for
  224 px views: crops of area < 1, then resizes, as on real frames)."""
  if config.dataset.image_size:
    return config.dataset.image_size
  if config.dataset.name.startswith("moving_fashion_mnist"):
    from jax_ssl.data.moving_fashion_mnist import builder  # pylint: disable=g-import-not-at-top
    return builder.FRAME_SIZE
  return max(config.augment.output_size, round(config.augment.output_size * 8 / 7))


def synthetic_batch(config, layout: str, image_size: int, in_channels: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
  """Random host arrays shaped as the trainer's step inputs for `config` (`input_layout`),
  global batch: "image" {"image": uint8 [B, image_size, image_size, C]}; "views" {"views":
  one uint8 [B, S_v, S_v, C] per view config}; "clips" {"clips": one uint8 [B, T, image_size,
  image_size, C] per view (T = clips.num_frames, image_size the stored frame side), "speeds":
  int32 [B, V] drawn from clips.speeds}."""
  if layout not in LAYOUTS:
    raise ValueError(f"layout={layout!r}; use one of {LAYOUTS}")
  rng = np.random.default_rng(seed)
  batch_size = config.global_batch_size
  pixels = lambda *shape: rng.integers(0, 256, shape, dtype=np.uint8)
  if layout == "image":
    return {"image": pixels(batch_size, image_size, image_size, in_channels)}
  views = config_lib.view_configs(config)
  if layout == "views":
    return {"views": tuple(pixels(batch_size, v.output_size, v.output_size, in_channels)
                           for v in views)}
  frames = config.clips.num_frames
  speeds = np.asarray(config.clips.speeds, np.int32)
  return {"clips": tuple(pixels(batch_size, frames, image_size, image_size, in_channels)
                         for _ in views),
          "speeds": rng.choice(speeds, (batch_size, len(views))).astype(np.int32)}


def _num_classes(config) -> int:
  name = config.dataset.name
  return 1000 if name.startswith("imagenet") else 400 if name.startswith("kinetics") else (
      101 if name == "ucf101" else 10)


def build_step(config, in_channels: int, image_size: int, num_devices: int | None = None,
               layout: str | None = None):
  """The trainer's step for `config` on this machine's devices (the first `num_devices`;
  None: all), jitted as the trainer jits it (replicated state, batch sharded over the mesh),
  and its arguments: (jitted step, the un-jitted step, jit keyword arguments, graphdef,
  state, batch, rng, spec, optimizer).

  The batch is `synthetic_batch(config, layout, image_size, in_channels)` on the devices;
  `layout` None: "clips" for a video config (`is_video_config`; `image_size` is then the
  clips' frame side), else "image" (`input_layout` gives the trainer's own choice, "views"
  for ImageNet's host crops)."""
  return _build(config, in_channels, image_size, num_devices, layout)[:9]


def _build(config, in_channels: int, image_size: int, num_devices: int | None = None,
           layout: str | None = None):
  """`build_step`'s results, then the step maker `make_step(grad_accum_steps, mesh)` (as
  train.py's: the trainer counts its FLOPs with `make_step(1, None)`) and the mesh."""
  mesh = sharding.make_mesh(num_devices)
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  layout = layout or ("clips" if is_video_config(config) else "image")
  method = config_lib.build_method(config)
  spec = method.spec
  num_classes = _num_classes(config)
  model = config_lib.build_model(config, in_channels, config.seed, num_classes=num_classes,
                                 method=method,
                                 num_frames=config.clips.num_frames if layout == "clips" else None)
  optimizer, schedule = config_lib.build_optimizer(config)
  graphdef, state = create_train_state(
      model, optimizer, config_lib.init_method_state(config, method=method),
      spec.target_modules)
  state = sharding.replicate(state, mesh)
  batch_size = config.global_batch_size
  batch = jax.device_put(synthetic_batch(config, layout, image_size, in_channels),
                         batch_sharding)
  if config.online_probe:  # --set online_probe=True: the step with the online linear probe
    batch["label"] = jax.device_put(
        np.random.default_rng(1).integers(0, num_classes, (batch_size,), dtype=np.int32),
        batch_sharding)
  rng = sharding.replicate(jax.random.key_data(jax.random.key(0)), mesh)
  def make_step(grad_accum_steps: int, step_mesh):  # as train.py's
    return make_train_step(graphdef, spec, method.args, optimizer,
                           schedule, config_lib.view_configs(config),
                           total_steps=config.total_steps,
                           grad_accum_steps=grad_accum_steps,
                           grad_accum_mode=config.grad_accum_mode,
                           online_probe=config.online_probe, mesh=step_mesh,
                           teacher_graphdef=method.teacher_graphdef)
  train_step = make_step(config.grad_accum_steps, mesh)
  jit_kwargs = dict(in_shardings=(replicated, batch_sharding, replicated),
                    out_shardings=(replicated, replicated))
  step_fn = jax.jit(train_step, donate_argnums=(0,), **jit_kwargs)
  return (step_fn, train_step, jit_kwargs, graphdef, state, batch, rng, spec, optimizer,
          make_step, mesh)


def _fixed_views(config, spec, batch) -> tuple[list[jax.Array], jax.Array | None]:
  """The model-only step's views (float32 in [0, 1], no augmentation) and clip speeds: the
  image for each of the method's views, the host views, or each clip's top-left S_v x S_v
  crop."""
  views = config_lib.view_configs(config)
  if "clips" in batch:
    return ([jnp.asarray(c[:, :, :v.output_size, :v.output_size], jnp.float32) / 255.0
             for c, v in zip(batch["clips"], views)], jnp.asarray(batch["speeds"], jnp.int32))
  if "views" in batch:
    return [jnp.asarray(v, jnp.float32) / 255.0 for v in batch["views"]], None
  images = jnp.asarray(batch["image"], jnp.float32) / 255.0
  return [images for _ in range(spec.views_for(config.method_args))], None


def device_peak_bytes(device=None) -> int | None:
  """The device's peak bytes in use since the process started (`memory_stats()`
  "peak_bytes_in_use": GPUs, TPUs); None where the backend keeps no statistics (CPU)."""
  device = device or jax.devices()[0]
  try:
    stats = device.memory_stats()
  except (AttributeError, NotImplementedError, RuntimeError):
    stats = None
  peak = (stats or {}).get("peak_bytes_in_use")
  return int(peak) if peak is not None else None


def benchmark_jax(config, steps: int, in_channels: int, image_size: int,
                  model_step: bool = True, *, warmup: int = 1, layout: str | None = None,
                  xla_flops: bool = True, num_devices: int | None = None
                  ) -> tuple[dict, Callable | None]:
  """-> (results, a function running one model-only step, or None without `model_step`).

  The trainer's step is compiled, run `warmup` times, then timed over `steps` steps
  (dispatched back to back, one wait at the end). Results: trainer_compile_s,
  trainer_step_s, model_flops (the step's model FLOPs as the trainer counts them for its
  `mfu`: perf.step_flops), peak_flops_per_s and mfu (perf.peak_flops_per_second of the
  mesh's devices in model.dtype; no mfu where no peak is known), trainer_peak_bytes (XLA's
  buffer assignment), device_peak_bytes (memory_stats after the timed steps, where the
  backend keeps it) and peak_memory_bytes / peak_memory_source (the device's figure, else
  XLA's); with `xla_flops` also trainer_flops (XLA's count of the compiled step with its own
  convolutions: one more compile).
  """
  (step_fn, train_step, jit_kwargs, graphdef, state, batch, rng, spec, optimizer, make_step,
   mesh) = _build(config, in_channels, image_size, num_devices, layout)
  devices = mesh.devices.flatten().tolist()
  results = {"input_layout": next((k for k in ("clips", "views") if k in batch), "image"),
             "batch_shapes": {key: [list(x.shape) for x in value] if isinstance(value, tuple)
                              else list(value.shape) for key, value in batch.items()}}

  # Trainer step.
  start = time.perf_counter()
  lowered = step_fn.lower(state, batch, rng)
  compiled = lowered.compile()
  results["trainer_compile_s"] = time.perf_counter() - start
  if xla_flops:
    results["trainer_flops"] = _flops_without_kernels(train_step, jit_kwargs, state, batch, rng)
  # The trainer's count (train.py): the step on the global arrays, one pass per micro-batch.
  results["model_flops"] = perf.step_flops(
      lowered, lambda: jax.jit(make_step(1, None)).lower(state, batch, rng),
      grad_accum_steps=config.grad_accum_steps, per_device_passes=mesh.size > 1)
  memory = compiled.memory_analysis()
  if memory is not None:  # XLA's buffer assignment: live arguments + outputs + temporaries
    results["trainer_peak_bytes"] = int(
        memory.argument_size_in_bytes + memory.output_size_in_bytes
        + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
  holder = {"state": state}

  def run_trainer():
    holder["state"], metrics = compiled(holder["state"], batch, rng)
    return metrics["loss"]

  for _ in range(max(warmup, 1)):
    results["first_loss"] = float(jax.block_until_ready(run_trainer()))
  results["trainer_step_s"] = _time(run_trainer, steps)
  results["timed_steps"], results["warmup_steps"] = steps, max(warmup, 1)
  results["last_loss"] = float(run_trainer())
  # Page faults of the steady state, over FAULT_STEPS more steps: XLA:CPU's freed temporaries
  # faulted in anew each step (jax_ssl/backends/cpu_kernels/host_memory.py). Not over the
  # timed steps: with the heap kept, it still grows to its working size over the first ~8
  # steps (48k faults a step for the main job, 0 after, measured), which a count over steps
  # 2-16 spread as ~15k a step.
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  _time(run_trainer, FAULT_STEPS)
  results["minor_page_faults_per_step"] = (
      resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / FAULT_STEPS
  device_peak = device_peak_bytes(devices[0])
  if device_peak is not None:
    results["device_peak_bytes"] = device_peak
  results["peak_memory_bytes"] = device_peak if device_peak is not None else results.get(
      "trainer_peak_bytes")
  results["peak_memory_source"] = ("memory_stats" if device_peak is not None else
                                   "memory_analysis" if memory is not None else None)
  peak = perf.peak_flops_per_second(devices, config.model.dtype)
  results["peak_flops_per_s"] = peak
  results.update(perf.utilization(results["model_flops"], 1, results["trainer_step_s"], peak))

  if not model_step:
    return results, None

  # Model-only step on fixed views (what a PyTorch loop times).
  args = config.method_args
  objective = lambda *inputs: spec.objective(*inputs, args)  # (model, views, state, context)
  views, clip_speeds = _fixed_views(config, spec, batch)
  teacher = config_lib.build_method(config).teacher_graphdef if spec.load_teacher else None
  context = StepContext(rng=jax.random.key(1), step=jnp.zeros((), jnp.int32), teacher=teacher,
                        clip_speeds=clip_speeds)

  def model_step(state, views):
    def loss_fn(params):
      m = nnx.merge(graphdef, params, state.batch_stats, copy=True)
      m.train()
      target = None
      if spec.target_modules:  # EMA target, as the trainer's step builds it
        target = nnx.merge(graphdef, with_modules(jax.lax.stop_gradient(params),
                                                  state.target_params),
                           state.batch_stats, copy=True)
        target.train()
      loss, _, _ = objective(m, views, state.method_state, context._replace(target=target))
      return loss, nnx.state(m, nnx.BatchStat)
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return state.replace(params=optax.apply_updates(state.params, updates),
                         batch_stats=batch_stats, opt_state=opt_state), loss

  model_fn = jax.jit(model_step, donate_argnums=(0,))
  start = time.perf_counter()
  compiled_model = model_fn.lower(holder["state"], views).compile()
  results["model_compile_s"] = time.perf_counter() - start

  def run_model():
    holder["state"], loss = compiled_model(holder["state"], views)
    return loss

  jax.block_until_ready(run_model())
  results["model_step_s"] = _time(run_model, steps)
  return results, run_model


# ----------------------------------------------------------------------------------------
# The compiled step's HLO: collectives and convolutions / dots by dtype (--hlo).

COLLECTIVES = ("all-reduce", "all-gather", "all-to-all", "collective-permute",
               "reduce-scatter")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
                "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8,
                "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1}
_ARRAY = re.compile(r"\b([a-z]+[0-9]*[a-z0-9]*)\[([0-9,]*)\]")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?(%?[\w.\-]+)\s*=\s*")
_CALLED = re.compile(r"\b(body|condition|calls|to_apply|true_computation|false_computation)"
                     r"=(%?[\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_CUSTOM_TARGET = re.compile(r'custom_call_target="([^"]+)"')


def _split_type(text: str) -> tuple[str, str]:
  """'(f32[4]{0}, /*index=1*/f32[2]{0}) all-reduce(...' -> (the type, the rest)."""
  if not text.startswith("("):
    head, _, rest = text.partition(" ")
    return head, rest
  depth = 0
  for i, char in enumerate(text):
    depth += char == "("
    depth -= char == ")"
    if depth == 0:
      return text[:i + 1], text[i + 1:].lstrip()
  return text, ""


def _arrays(type_text: str) -> list[tuple[str, tuple[int, ...]]]:
  """'(f32[4,2]{1,0}, bf16[3]{0})' -> [('f32', (4, 2)), ('bf16', (3,))] (arrays only)."""
  return [(dtype, tuple(int(d) for d in dims.split(",") if d))
          for dtype, dims in _ARRAY.findall(re.sub(r"/\*.*?\*/", "", type_text))
          if dtype in _DTYPE_BYTES]


def _nbytes(arrays) -> int:
  return sum(_DTYPE_BYTES[dtype] * math.prod(shape) for dtype, shape in arrays)


def parse_hlo(text: str) -> list[dict]:
  """The instructions of an HLO module's text (`compiled.as_text()`), each a dict: name,
  op, arrays (the result's [(dtype, shape)]), operands (names), attributes (the text after
  the operands), computation, and `runs`: how many times it runs per execution of the
  module (the product of the known trip counts of the while loops around it; 1 outside
  loops; every branch of a conditional counted once)."""
  instructions, computation, entry = [], None, None
  calls: dict[str, list[tuple[str, int]]] = {}
  for line in text.splitlines():
    if not line.startswith(" ") and line.rstrip().endswith("{"):
      header = line.split("(", 1)[0].split()
      computation = header[-1].lstrip("%") if header else None
      if header and header[0] == "ENTRY":
        entry = computation
      continue
    match = _INSTRUCTION.match(line)
    if not match or computation is None:
      continue
    type_text, rest = _split_type(line[match.end():])
    op, _, rest = rest.partition("(")
    depth, end = 1, len(rest)
    for i, char in enumerate(rest):
      depth += (char == "(") - (char == ")")
      if depth == 0:
        end = i
        break
    operands = re.findall(r"%([\w.\-]+)", rest[:end])
    attributes = rest[end + 1:]
    trips = 1
    if op == "while":
      found = _TRIP_COUNT.search(attributes)
      trips = int(found.group(1)) if found else 1
    called = [(name.lstrip("%"), trips if kind in ("body", "condition") else 1)
              for kind, name in _CALLED.findall(attributes)]
    for branches in _BRANCHES.findall(attributes):
      called += [(name.strip().lstrip("%"), 1) for name in branches.split(",") if name.strip()]
    calls.setdefault(computation, []).extend(called)
    instructions.append(dict(name=match.group(1).lstrip("%"), op=op.strip(),
                             arrays=_arrays(type_text), operands=operands,
                             attributes=attributes, computation=computation))
  runs = {entry: 1} if entry else {}
  order = [entry] if entry else []
  for parent in order:  # breadth-first from ENTRY over the call graph (a DAG)
    for child, trips in calls.get(parent, []):
      if child not in runs:
        order.append(child)
      runs[child] = max(runs.get(child, 0), runs[parent] * trips)
  for instruction in instructions:
    instruction["runs"] = runs.get(instruction["computation"], 1)
  return instructions


def collectives(instructions: list[dict]) -> list[dict]:
  """The cross-device collectives: kind (one of COLLECTIVES), arrays (what each device
  ends up with: the reduced buffers of an all-reduce, the gathered ones of an all-gather,
  the received ones of an all-to-all / collective-permute, the shard of a reduce-scatter),
  bytes of those arrays per device per execution (times `runs`) and the instruction.
  Asynchronous pairs (GPU, TPU: `-start` / `-done`) count once, at the start."""
  found = []
  for instruction in instructions:
    op = instruction["op"]
    kind = op[:-len("-start")] if op.endswith("-start") else op
    if kind not in COLLECTIVES:
      continue
    arrays = instruction["arrays"]
    if op.endswith("-start") and kind == "all-gather":  # (operands, results)
      arrays = arrays[len(arrays) // 2:]
    elif op.endswith("-start") and kind == "collective-permute":  # (source, dest, context)
      arrays = arrays[1:2]
    found.append(dict(kind=kind, arrays=arrays, bytes=_nbytes(arrays) * instruction["runs"],
                      instruction=instruction))
  return found


def ops_by_dtype(instructions: list[dict]) -> dict[str, dict[str, int]]:
  """Convolutions and dot products by the dtype of their first operand (times `runs`):
  `convolution` / `dot` instructions, inside fusions too, and the custom calls that stand
  for them (cuDNN / oneDNN convolutions, cuBLAS gemms, this library's CPU kernels)."""
  dtypes = {i["name"]: i["arrays"][0][0] for i in instructions if i["arrays"]}
  counts: dict[str, dict[str, int]] = {"convolution": {}, "dot": {}}
  for instruction in instructions:
    op = instruction["op"]
    if op == "custom-call":
      target = (_CUSTOM_TARGET.search(instruction["attributes"]) or [None, ""])[1].lower()
      op = ("convolution" if "conv" in target else
            "dot" if any(k in target for k in ("gemm", "matmul", "dot")) else op)
    if op not in counts:
      continue
    operand = instruction["operands"][0] if instruction["operands"] else None
    dtype = dtypes.get(operand) or (instruction["arrays"][0][0] if instruction["arrays"] else "?")
    counts[op][dtype] = counts[op].get(dtype, 0) + instruction["runs"]
  return counts


def hlo_summary(text: str) -> dict:
  """{"collective_bytes": {kind: bytes per device per step}, "collective_counts": {kind:
  instructions}, "ops_by_dtype": {"convolution": {dtype: n}, "dot": {dtype: n}}}."""
  instructions = parse_hlo(text)
  found = collectives(instructions)
  return {"collective_bytes": {k: sum(c["bytes"] for c in found if c["kind"] == k)
                               for k in COLLECTIVES},
          "collective_counts": {k: sum(c["instruction"]["runs"] for c in found
                                       if c["kind"] == k) for k in COLLECTIVES},
          "ops_by_dtype": ops_by_dtype(instructions)}


def hlo_report(config, in_channels: int, image_size: int, layout: str | None = None) -> dict:
  """`hlo_summary` of the trainer's step for `config`, compiled for this machine's devices
  and never run, plus `ops_by_dtype_lowered`: the same counts in the program JAX hands XLA
  (before XLA's passes; XLA:CPU computes bfloat16 convolutions and dots in float32, so on
  CPU the compiled counts show float32 where the model asked for bfloat16)."""
  step_fn, _, _, _, state, batch, rng, _, _ = build_step(config, in_channels, image_size,
                                                         layout=layout)
  lowered = step_fn.lower(state, batch, rng)
  summary = hlo_summary(lowered.compile().as_text())
  summary["ops_by_dtype_lowered"] = ops_by_dtype(parse_hlo(lowered.as_text(dialect="hlo")))
  return summary


def matmul_ceiling(size: int = 2048, steps: int = 10) -> float:
  """GFLOP/s of a jitted f32 [size, size] @ [size, size] on this machine's first device."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ a)
  jax.block_until_ready(matmul(a))
  return 2 * size**3 / _time(lambda: matmul(a), steps) / 1e9


def benchmark_pipeline(config, batches: int = 40) -> dict:
  """Images/s of the input pipeline alone (TFDS array_record -> grain -> global jax.Array),
  as the trainer consumes it (the split held in memory as the trainer holds it:
  `dataset.in_memory_max_bytes`), and the host CPU it costs per batch (all threads); the
  augmentation runs on device inside the step (trainer_step_s)."""
  from jax_ssl.data import pipeline  # pylint: disable=g-import-not-at-top
  data = config.dataset
  pipeline.prepare(data.name, data_dir=data.data_dir, source_dir=data.source_dir)
  start = time.perf_counter()
  source = pipeline.load_source(data.name, data.train_split, data_dir=data.data_dir,
                                in_memory_max_bytes=data.in_memory_max_bytes,
                                reads=config.total_steps * config.global_batch_size)
  load_seconds = time.perf_counter() - start
  mesh = sharding.make_mesh()
  iterator = pipeline.train_iterator(
      source, local_batch_size=sharding.local_batch_size(config.global_batch_size),
      seed=config.seed, process_index=jax.process_index(), process_count=jax.process_count(),
      image_size=data.image_size, read_threads=data.read_threads)
  jax.block_until_ready(sharding.to_global(next(iterator), mesh))  # threads started
  before = resource.getrusage(resource.RUSAGE_SELF)
  seconds = _time(lambda: sharding.to_global(next(iterator), mesh)["image"], batches)
  after = resource.getrusage(resource.RUSAGE_SELF)
  cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
  return {"pipeline_images_per_s": config.global_batch_size / seconds,
          "pipeline_cpu_ms_per_batch": 1e3 * cpu / batches,
          "pipeline_source": type(source).__name__, "pipeline_load_s": load_seconds}


def torch_peer(config, in_channels: int):
  """The config's ResNet + projector in plain torch.nn (same widths, strides, padding)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  from jax_ssl.models import resnet  # pylint: disable=g-import-not-at-top

  stage_sizes, block, default_width = resnet.BACKBONES[config.model.backbone]
  width = config.model.width or default_width

  class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, c, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(c)
      self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(c)
      self.shortcut = (nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
                       if stride != 1 or cin != c else nn.Identity())

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

  class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, c, stride):
      super().__init__()
      out = 4 * c
      self.body = nn.Sequential(
          nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
          nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
          nn.Conv2d(c, out, 1, bias=False), nn.BatchNorm2d(out))
      self.shortcut = (nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                       if stride != 1 or cin != out else nn.Identity())

    def forward(self, x):
      return torch.relu(self.body(x) + self.shortcut(x))

  torch_block = Basic if block is resnet.BasicBlock else Bottle
  layers = []
  if config.model.stem in ("cifar", "stride2"):
    stride = 1 if config.model.stem == "cifar" else 2
    layers += [nn.Conv2d(in_channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
               nn.ReLU()]
  else:
    layers += [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
               nn.MaxPool2d(3, 2, 1)]
  cin = width
  for stage, blocks in enumerate(stage_sizes):
    for index in range(blocks):
      layers.append(torch_block(cin, width * 2**stage, 2 if stage > 0 and index == 0 else 1))
      cin = width * 2**stage * torch_block.expansion
  final = config.model.final_features
  if final:  # the final 1x1 conv + BN + ReLU before pooling
    layers += [nn.Conv2d(cin, final, 1, bias=False), nn.BatchNorm2d(final), nn.ReLU()]
    cin = final
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  heads = config.heads  # the typed Heads, defaults filled in
  projector = [nn.Linear(cin, heads.projector_hidden_dim, bias=False),
               nn.BatchNorm1d(heads.projector_hidden_dim), nn.ReLU(),
               nn.Linear(heads.projector_hidden_dim, heads.projector_output_dim)]
  return nn.Sequential(*layers, *projector).to(memory_format=torch.channels_last)


def torch_step(config, in_channels: int, image_size: int) -> tuple[Callable, dict]:
  """-> (a function running one step of the PyTorch peer, warmed up; version info)."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  model = torch_peer(config, in_channels)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
  temperature = config.method_args.temperature
  views = torch.rand(2 * config.global_batch_size, in_channels, image_size, image_size).to(
      memory_format=torch.channels_last)

  def nt_xent(z):
    z = torch.nn.functional.normalize(z, dim=1)
    n = z.shape[0] // 2
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return torch.nn.functional.cross_entropy(logits, target)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = nt_xent(model(views))
    loss.backward()
    optimizer.step()
    return loss

  step()
  return step, {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}


def compare_torch(run_model: Callable, torch_run: Callable, steps: int, rounds: int) -> dict:
  """JAX's and PyTorch's model steps timed in alternating rounds of `steps` steps each, so
  both see the same machine state (on the 2-vCPU VM PyTorch's step took 0.233-0.295 s in
  three runs within minutes); the medians over rounds give the speeds and their ratio."""
  jax_times, torch_times = [], []
  for _ in range(rounds):
    jax_times.append(_time(run_model, steps))
    start = time.perf_counter()
    for _ in range(steps):
      torch_run()
    torch_times.append((time.perf_counter() - start) / steps)
  jax_median, torch_median = float(np.median(jax_times)), float(np.median(torch_times))
  return {"model_step_s": jax_median, "torch_model_step_s": torch_median,
          "jax_over_torch_speed": torch_median / jax_median, "compare_rounds": rounds,
          "jax_round_step_s": jax_times, "torch_round_step_s": torch_times}


def _cpu_model() -> str:
  from jax_ssl.evaluate import host  # pylint: disable=g-import-not-at-top
  return host.cpu_model()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--steps", type=int, default=15,
                      help="timed steps (after --warmup untimed ones); a few hundred for a "
                           "steady accelerator figure")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the compile")
  parser.add_argument("--layout", choices=("auto", "trainer", *LAYOUTS), default="auto",
                      help="the synthetic batch: auto (clips for a video config, else the "
                           "image), trainer (what the trainer feeds: host views for ImageNet), "
                           "or one of image / views / clips")
  parser.add_argument("--frame-size", type=int, default=0,
                      help="video configs: the clips' stored frame side (0: "
                           "dataset.image_size, else the view's side x 8/7)")
  parser.add_argument("--compare-torch", action="store_true")
  parser.add_argument("--rounds", type=int, default=5,
                      help="--compare-torch: alternating JAX/PyTorch rounds of --steps steps")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override, e.g. --set model.width=24 (repeatable)")
  parser.add_argument("--json", help="also write the results to this file")
  parser.add_argument("--backend", choices=backends.NAMES, default=None,
                      help="the speed backend (config.backend; default: the config's, else auto)")
  parser.add_argument("--trainer-only", action="store_true",
                      help="time only the trainer's step (skip the model-only step)")
  parser.add_argument("--pipeline", action="store_true",
                      help="also time the input pipeline alone (needs the dataset prepared)")
  parser.add_argument("--ceiling", action="store_true",
                      help="also measure the machine's f32 matmul GFLOP/s")
  parser.add_argument("--hlo", action="store_true",
                      help="compile the step (never run it) and print the bytes each collective "
                           "kind moves per device and the convolutions and dots by dtype; the "
                           "last line is one JSON object")
  args = parser.parse_args()
  config = load_config(args.config, args.set, args.backend)
  # Before anything starts JAX's backends, as the trainer's main (jax_ssl/backends).
  process = backends.prepare_process(config.backend)
  in_channels = in_channels_of(config)
  layout = {"auto": None, "trainer": input_layout(config)}.get(args.layout, args.layout)
  video = (layout or ("clips" if is_video_config(config) else "image")) == "clips"
  image_size = ((args.frame_size or default_frame_size(config)) if video else
                config.dataset.image_size or config.augment.output_size)
  batch = config.global_batch_size
  if args.hlo:
    report = hlo_report(config, in_channels, image_size, layout)
    print(f"{args.config}: the compiled step on {jax.device_count()} x "
          f"{jax.devices()[0].device_kind}, global batch {batch}, "
          f"{len(config_lib.view_configs(config))} views per image")
    for kind, size in report["collective_bytes"].items():
      print(f"  {kind:<20} {report['collective_counts'][kind]:>5} ops {size:>14,d} bytes per device")
    for op, counts in report["ops_by_dtype"].items():
      lowered = report["ops_by_dtype_lowered"][op]
      print(f"  {op:<20} compiled {counts}  (as JAX lowered it: {lowered})")
    print(json.dumps(report))
    return
  results = {"config": args.config, "device": str(jax.devices()[0].device_kind),
             "device_count": jax.device_count(), "cpu": _cpu_model(),
             "cpu_count": os.cpu_count(), "jax_version": jax.__version__,
             "backend": backends.select(config.backend).name,
             "host_malloc_retained": process.host_malloc_retained,
             "global_batch_size": batch, "views_per_image": len(config_lib.view_configs(config))}
  if video:
    results.update(clips_per_video=len(config_lib.view_configs(config)),
                   num_frames=config.clips.num_frames, frame_size=image_size)
  jax_results, run_model = benchmark_jax(config, args.steps, in_channels, image_size,
                                         model_step=not args.trainer_only or args.compare_torch,
                                         warmup=args.warmup, layout=layout)
  results.update(jax_results)
  # Examples (images, or videos of `clips_per_video` clips) per second.
  results["trainer_images_per_s"] = batch / results["trainer_step_s"]
  if "model_step_s" in results:
    results["model_images_per_s"] = batch / results["model_step_s"]
  if results.get("trainer_flops"):
    results["trainer_gflops_per_s"] = results["trainer_flops"] / results["trainer_step_s"] / 1e9
  if args.ceiling:
    results["matmul_gflops_per_s"] = matmul_ceiling()
  if args.pipeline:
    results.update(benchmark_pipeline(config))
    results["pipeline_margin"] = results["pipeline_images_per_s"] / results["trainer_images_per_s"]
  results["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  if args.compare_torch:
    try:
      torch_run, torch_info = torch_step(config, in_channels, image_size)
      results.update(torch_info)
      results.update(compare_torch(run_model, torch_run, args.steps, args.rounds))
      results["model_images_per_s"] = batch / results["model_step_s"]
    except ImportError:
      results["torch"] = "not importable"
  print(json.dumps(results, indent=2))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
