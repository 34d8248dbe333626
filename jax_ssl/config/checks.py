"""Config checks: the schema of every key the trainer reads, `validate` (one line naming the
key, its value and what is allowed), checks that need the dataset and the defaults of keys
that older saved configs predate (whether a workdir can be resumed: resume.py)."""

from __future__ import annotations

import difflib
from typing import Any

import ml_collections

from jax_ssl import methods, sharding
from jax_ssl.config.build import dtype_refusal, method_args, view_configs
from jax_ssl.errors import ConfigError
from jax_ssl.models import resnet, vit, vq


_NUMBER = (int, float)
_PAIR = (tuple, list)
# Every key the trainer reads, with its type. `None` in a tuple allows an unset value;
# a dict is a nested section; FREE sections are checked by their consumer (method_args
# against the method's defaults, heads by the method's head factory).
FREE = "free"
SCHEMA: dict[str, Any] = {
    "method": str,
    "method_args": FREE,
    "dataset": {"name": str, "data_dir": (str, type(None)), "source_dir": str,
                "train_split": str, "test_split": str, "read_threads": int, "image_size": int,
                # variable-size images: each view's crop made on the host (data/host_views.py)
                "host_crops": bool,
                # grain worker processes (-1: one per core but one, at most 32; 0: threads
                # of the trainer's process) and the finished batches each keeps ready
                "num_workers": int, "worker_buffer_size": int},
    "augment": {"output_size": int, "crop_scale": _PAIR, "crop_ratio": _PAIR,
                "flip_prob": _NUMBER, "jitter_prob": _NUMBER, "brightness": _NUMBER,
                "contrast": _NUMBER, "saturation": _NUMBER, "hue": _NUMBER,
                "grayscale_prob": _NUMBER, "blur_prob": _NUMBER, "blur_sigma": _PAIR,
                "solarize_prob": _NUMBER, "solarize_threshold": _NUMBER,
                # per-global-view overrides of the keys above (BYOL/DINO's asymmetric views)
                "view_overrides": _PAIR,
                # multi-crop: N local crops at a smaller size after the global views
                "local_crops": {"num": int, "output_size": int, "crop_scale": _PAIR,
                                "overrides": FREE}},
    "model": {"backbone": str, "width": (int, type(None)), "stem": str,
              "final_features": int,  # ResNets: > 0 adds a final 1x1 conv to this width
              # compute dtype of every backbone ("float32", "bfloat16"; parameters float32)
              "dtype": str,
              # ViT backbones (vit_tiny ... vit_huge) only; None = the named size's value
              "patch_size": int, "pos_embedding": str, "cls_token": bool, "pool": str,
              "remat": bool, "depth": (int, type(None)),
              "dim": (int, type(None)), "num_heads": (int, type(None))},
    "heads": FREE,
    "optimizer": {"name": str, "base_learning_rate": _NUMBER, "lr_scaling": str,
                  "weight_decay": _NUMBER, "momentum": _NUMBER, "warmup_steps": int,
                  "trust_coefficient": _NUMBER, "beta2": _NUMBER},
    "seed": int, "global_batch_size": int, "grad_accum_steps": int, "total_steps": int,
    # How grad_accum_steps > 1 splits the loss. "micro_batch": each micro-batch's loss on
    # the micro-batch alone (negatives, Barlow Twins / VICReg statistics, Sinkhorn and
    # SIGReg see global_batch_size / grad_accum_steps examples, while the learning rate is
    # scaled by the global batch). "exact": the whole batch's loss (GradCache: embeddings of
    # every micro-batch, then a second pass), for methods that declare embed and
    # embedding_loss; BatchNorm still normalises each micro-batch with its own statistics.
    "grad_accum_mode": str,
    "log_every_steps": int,
    "checkpoint_every_steps": int, "keep_checkpoints": int, "evaluate": bool,
    "skip_nonfinite_updates": bool,
    # a linear classifier on stop-gradient backbone features of the first view, trained
    # alongside (heads["online_probe"]); logs online_probe/accuracy and online_probe/loss
    "online_probe": bool,
    # "replicated": every device holds the whole train state; "fsdp": the parameters,
    # optimizer state and EMA targets split over the devices (jax_ssl/sharding.py)
    "sharding": str,
    # () one `data` axis over all devices; (data, fsdp) a 2-D mesh, -1 for the devices left
    # (the batch split over both axes, the state sharded over `fsdp`): sharding="fsdp" only
    "mesh_shape": _PAIR,
    "fsdp_min_bytes": int,  # arrays of at most this many bytes stay replicated under fsdp
    "eval": {"batch_size": int, "knn_k": int, "knn_temperature": _NUMBER,
             "baselines": bool, "train_limit": int, "test_limit": int,
             # jax_ssl/evaluate/protocols.py: "knn,linear,finetune,lowlabel[-<P>%]"
             "protocols": (str, tuple, list), "knn_k_sweep": _PAIR, "low_label_seeds": _PAIR,
             "report": bool,  # pictures + DIR/report.md after the evaluation
             # "method" (MethodSpec.evaluation_encoder), "online" or "target" (EMA target)
             "encoder": str,
             # the evaluation view's central crop of the shorter side (ImageNet: 0.875)
             "crop_fraction": _NUMBER,
             "finetune": {"steps": int, "batch_size": int, "base_learning_rate": _NUMBER,
                          "weight_decay": _NUMBER, "warmup_steps": int,
                          "label_smoothing": _NUMBER, "layer_decay": _NUMBER,
                          "optimizer": str, "crop_scale": _PAIR,
                          # also fine-tune on the low-label subsets of eval.protocols
                          "low_label": bool}},
}


def _check_schema(section, schema: dict[str, Any], prefix: str = "") -> None:
  """Unknown keys (typos), missing keys and wrong types, one line each."""
  for key in section.keys():
    if key not in schema:
      close = difflib.get_close_matches(key, list(schema), n=1)
      hint = f"did you mean '{prefix}{close[0]}'?" if close else f"allowed: {sorted(schema)}"
      raise ConfigError(f"config key '{prefix}{key}' is unknown; {hint}")
  for key, expected in schema.items():
    if key not in section:
      raise ConfigError(f"config key '{prefix}{key}' is missing; add it to the experiment file")
    value = section[key]
    if isinstance(expected, dict):
      if not isinstance(value, (dict, ml_collections.ConfigDict)):
        raise ConfigError(f"config key '{prefix}{key}' must be a section (ConfigDict), got {value!r}")
      _check_schema(value, expected, f"{prefix}{key}.")
    elif expected is not FREE:
      types = expected if isinstance(expected, tuple) else (expected,)
      if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = "/".join("None" if t is type(None) else t.__name__ for t in types)
        raise ConfigError(f"{prefix}{key}={value!r} has type {type(value).__name__}; expected {names}")


def validate(config: ml_collections.ConfigDict, device_count: int) -> None:
  """Raises ConfigError (a ValueError) with one line naming the key, the value and what is allowed."""
  def check(ok: bool, message: str):
    if not ok:
      raise ConfigError(message)

  _check_schema(config, SCHEMA)

  unknown_methods = methods.unknown_parts(config.method)
  not_methods = "" if [config.method] == unknown_methods else (
      f" ({', '.join(map(repr, unknown_methods))} is not a method)")
  check(not unknown_methods,
        f"method={config.method!r} is unknown{not_methods}; choose from "
        f"{sorted(methods.METHODS)}, or join several with '+' to mix them (e.g. 'simclr+rotation')")
  spec = methods.get_method(config.method)
  _check_method_args(config.method_args, spec.default_method_args, config.method)
  if callable(spec.num_views):
    views = spec.views_for(method_args(config))
    check(isinstance(views, int) and views >= 1,
          f"method_args gives {views!r} views for {config.method}; need an integer >= 1")
  backbones = sorted(resnet.BACKBONES) + sorted(vit.BACKBONES) + sorted(vq.BACKBONES)
  check(config.model.backbone in backbones,
        f"model.backbone={config.model.backbone!r}; choose one of {backbones}")
  check(not spec.backbones or config.model.backbone in spec.backbones,
        f"method={config.method!r} needs model.backbone in {list(spec.backbones)}; "
        f"got {config.model.backbone!r}")
  is_vit = config.model.backbone in vit.BACKBONES
  check(is_vit or not spec.patch_tokens or bool(spec.backbones),
        f"method={config.method!r} works on patch tokens and needs a ViT backbone; "
        f"model.backbone={config.model.backbone!r}, use one of {sorted(vit.BACKBONES)}")
  refusal = dtype_refusal(config.model.backbone, config.model.dtype)
  check(refusal is None, refusal or "")
  if is_vit:
    _check_vit(config, check)
  if config.model.backbone in vq.BACKBONES:
    patch = config.model.patch_size
    check(patch >= 1 and patch & (patch - 1) == 0 and config.augment.output_size % patch == 0,
          f"model.patch_size={patch}: the VQ encoder downsamples by a power of 2 that divides "
          f"augment.output_size={config.augment.output_size}")
    check(bool(config.model.width),
          f"model.width={config.model.width}; the VQ encoder needs a width")
  check(config.model.final_features >= 0 and (
      not config.model.final_features or config.model.backbone in resnet.BACKBONES),
        f"model.final_features={config.model.final_features}: a final 1x1 conv of that width "
        f"exists for the ResNets only (use 0 with model.backbone={config.model.backbone!r})")
  check(config.model.stem in ("cifar", "imagenet"),
        f"model.stem={config.model.stem!r}; use 'cifar' (3x3, no max-pool) or 'imagenet' (7x7 + max-pool)")
  check(config.optimizer.name in ("lars", "adamw", "sgd"),
        f"optimizer.name={config.optimizer.name!r}; use 'lars', 'adamw' or 'sgd'")
  check(0 <= config.optimizer.beta2 < 1,
        f"optimizer.beta2={config.optimizer.beta2}; must be in [0, 1) (AdamW's 2nd-moment decay)")
  check(config.optimizer.trust_coefficient > 0,
        f"optimizer.trust_coefficient={config.optimizer.trust_coefficient}; must be > 0 (LARS eta)")
  check(config.optimizer.lr_scaling in ("linear", "sqrt", "none"),
        f"optimizer.lr_scaling={config.optimizer.lr_scaling!r}; use 'linear', 'sqrt' or 'none'")
  for key in ("total_steps", "global_batch_size", "log_every_steps", "checkpoint_every_steps"):
    check(isinstance(config[key], int) and config[key] > 0, f"{key}={config[key]!r}; must be a positive integer")
  check(config.global_batch_size % device_count == 0,
        f"global_batch_size={config.global_batch_size} is not divisible by the {device_count} devices; "
        f"use a multiple of {device_count}")
  check(config.grad_accum_steps >= 1 and config.global_batch_size % (
      config.grad_accum_steps * device_count) == 0,
        f"grad_accum_steps={config.grad_accum_steps} with global_batch_size="
        f"{config.global_batch_size} on {device_count} devices: the batch must split into "
        f"grad_accum_steps equal micro-batches, each divisible by the device count")
  check(config.grad_accum_mode in ("micro_batch", "exact"),
        f"grad_accum_mode={config.grad_accum_mode!r}; use 'micro_batch' or 'exact'")
  exact_methods = sorted(name for name, s in methods.METHODS.items()
                         if s.embed is not None and s.embedding_loss is not None)
  check(config.grad_accum_mode != "exact" or (spec.embed is not None
                                              and spec.embedding_loss is not None),
        f"grad_accum_mode='exact' needs a method whose loss is a function of the batch's "
        f"embeddings ({', '.join(exact_methods)}); {config.method} does not declare one, use "
        f"'micro_batch'")
  check(config.optimizer.base_learning_rate > 0,
        f"optimizer.base_learning_rate={config.optimizer.base_learning_rate}; must be > 0")
  check(config.optimizer.weight_decay >= 0,
        f"optimizer.weight_decay={config.optimizer.weight_decay}; must be >= 0")
  check(config.optimizer.warmup_steps >= 0,
        f"optimizer.warmup_steps={config.optimizer.warmup_steps}; must be >= 0")
  low, high = config.augment.crop_scale
  check(0 < low <= high <= 1, f"augment.crop_scale={tuple(config.augment.crop_scale)}; need 0 < low <= high <= 1")
  for key in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    check(0 <= config.augment[key] <= 1, f"augment.{key}={config.augment[key]}; must be in [0, 1]")
  for key in ("batch_size", "knn_k"):
    check(config.eval[key] > 0, f"eval.{key}={config.eval[key]}; must be positive")
  _validate_eval(config.eval, device_count)
  check(0 < config.eval.crop_fraction <= 1,
        f"eval.crop_fraction={config.eval.crop_fraction}; must be in (0, 1] (1: the whole "
        f"image; 0.875: ImageNet's Resize(256) + CenterCrop(224))")
  check(config.eval.encoder in ("method", "online", "target"),
        f"eval.encoder={config.eval.encoder!r}; use 'method' (as {config.method}'s paper "
        f"evaluates), 'online' or 'target'")
  check(config.eval.encoder != "target" or "backbone" in spec.target_modules,
        f"eval.encoder='target' but {config.method} has no EMA target of its backbone; use "
        f"'online' or 'method'")
  data = config.dataset
  check(data.num_workers >= -1,
        f"dataset.num_workers={data.num_workers}; use -1 (one per core but one), 0 (threads of "
        f"the trainer only) or a number of worker processes")
  check(data.read_threads >= 1, f"dataset.read_threads={data.read_threads}; must be >= 1")
  check(data.worker_buffer_size >= 1,
        f"dataset.worker_buffer_size={data.worker_buffer_size}; must be >= 1")
  check(config.keep_checkpoints > 0, f"keep_checkpoints={config.keep_checkpoints}; must be >= 1")
  _check_sharding(config, device_count, check)
  check(config.augment.local_crops.num >= 0,
        f"augment.local_crops.num={config.augment.local_crops.num}; must be >= 0")
  view_configs(config)  # per-view overrides and local crops: one line naming the bad key


def _check_sharding(config: ml_collections.ConfigDict, device_count: int, check) -> None:
  """sharding, mesh_shape and fsdp_min_bytes."""
  check(config.sharding in sharding.SHARDINGS,
        f"sharding={config.sharding!r}; use 'replicated' (every device holds the whole train "
        f"state) or 'fsdp' (parameters, optimizer state and EMA targets split over the devices)")
  shape = tuple(config.mesh_shape)
  check(not shape or config.sharding == "fsdp",
        f"mesh_shape={shape} needs sharding='fsdp' (its `fsdp` axis shards the state); pass "
        f"--config.sharding=fsdp, or --config.mesh_shape='()' for a replicated state")
  try:
    sharding.resolve_mesh_shape(shape, device_count)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  check(config.fsdp_min_bytes >= 0,
        f"fsdp_min_bytes={config.fsdp_min_bytes}; must be >= 0 (arrays of at most this many "
        f"bytes stay replicated; default {sharding.FSDP_MIN_BYTES})")


def _check_vit(config: ml_collections.ConfigDict, check) -> None:
  """The `model` keys of a ViT backbone, against each other and the view size."""
  model = config.model
  dim, depth, heads = vit.BACKBONES[model.backbone]
  dim, heads = model.dim or dim, model.num_heads or heads
  depth = depth if model.depth is None else model.depth
  size = config.augment.output_size
  check(model.patch_size > 0 and size % model.patch_size == 0,
        f"model.patch_size={model.patch_size} does not divide augment.output_size={size}; "
        f"use a divisor (4 for 28-32 px, 16 for 224 px)")
  check(model.pos_embedding in vit.POSITION_EMBEDDINGS,
        f"model.pos_embedding={model.pos_embedding!r}; use one of {vit.POSITION_EMBEDDINGS}")
  check(model.pool in vit.POOLS,
        f"model.pool={model.pool!r}; use 'gap' (mean of the patch tokens) or 'cls'")
  check(model.pool != "cls" or model.cls_token,
        "model.pool='cls' needs model.cls_token=True")
  check(depth >= 1, f"model.depth={model.depth}; must be >= 1")
  check(dim % heads == 0, f"model width {dim} is not divisible by {heads} heads; set "
                          f"model.dim / model.num_heads so that it is")
  check(model.pos_embedding != "sincos" or dim % 4 == 0,
        f"model width {dim}: sin-cos position embeddings need a multiple of 4")
  local = config.augment.local_crops
  check(local.num == 0 or local.output_size % model.patch_size == 0,
        f"augment.local_crops.output_size={local.output_size} does not split into "
        f"model.patch_size={model.patch_size} patches; use a multiple of {model.patch_size}")


def _validate_eval(ev, device_count: int) -> None:
  """eval.*: protocol names, k sweep, low-label seeds, fine-tuning values."""
  from jax_ssl.evaluate import protocols  # pylint: disable=g-import-not-at-top
  protocols.parse_protocols(ev.protocols)  # ConfigError naming the unknown protocol
  if not (ev.knn_k_sweep and all(isinstance(k, int) and k > 0 for k in ev.knn_k_sweep)):
    raise ConfigError(f"eval.knn_k_sweep={tuple(ev.knn_k_sweep)}; give positive integers, "
                      f"e.g. (10, 20, 100, 200)")
  if not (ev.low_label_seeds and all(isinstance(s, int) for s in ev.low_label_seeds)):
    raise ConfigError(f"eval.low_label_seeds={tuple(ev.low_label_seeds)}; give integers, one "
                      f"subset per seed, e.g. (0, 1, 2)")
  ft = ev.finetune
  checks = [
      (ft.steps > 0, f"eval.finetune.steps={ft.steps}; must be positive"),
      (ft.batch_size > 0 and ft.batch_size % device_count == 0,
       f"eval.finetune.batch_size={ft.batch_size}; must be a positive multiple of the "
       f"{device_count} devices"),
      (ft.base_learning_rate > 0, f"eval.finetune.base_learning_rate={ft.base_learning_rate}; "
                                  f"must be > 0"),
      (ft.weight_decay >= 0, f"eval.finetune.weight_decay={ft.weight_decay}; must be >= 0"),
      (ft.warmup_steps >= 0, f"eval.finetune.warmup_steps={ft.warmup_steps}; must be >= 0"),
      (0 <= ft.label_smoothing < 1,
       f"eval.finetune.label_smoothing={ft.label_smoothing}; must be in [0, 1)"),
      (0 < ft.layer_decay <= 1,
       f"eval.finetune.layer_decay={ft.layer_decay}; must be in (0, 1] (1: no layer-wise decay)"),
      (ft.optimizer in ("adamw", "sgd"),
       f"eval.finetune.optimizer={ft.optimizer!r}; use 'adamw' or 'sgd'"),
      (len(ft.crop_scale) == 2 and 0 < ft.crop_scale[0] <= ft.crop_scale[1] <= 1,
       f"eval.finetune.crop_scale={tuple(ft.crop_scale)}; need 0 < low <= high <= 1"),
  ]
  for ok, message in checks:
    if not ok:
      raise ConfigError(message)


# Keys added after some runs were saved, with the value those runs effectively used, so an
# older DIR/config.json still evaluates (python -m jax_ssl.evaluate) and resumes.
_SAVED_DEFAULTS: dict[str, Any] = {
    "grad_accum_mode": "micro_batch",  # the only gradient accumulation there was
    "online_probe": False,
    "sharding": "replicated",  # every run before FSDP replicated its state
    "mesh_shape": (),
    "fsdp_min_bytes": sharding.FSDP_MIN_BYTES,
    "model.final_features": 0,
    "optimizer.trust_coefficient": 0.001,  # LARS only; every experiment file had 0.001
    "eval.knn_k_sweep": (10, 20, 100, 200),
    "eval.report": False,
    # Fine-tuning did not exist: the Fashion-MNIST defaults (experiments/fashion_mnist).
    "eval.finetune": dict(steps=500, batch_size=256, base_learning_rate=1e-3,
                          weight_decay=0.05, warmup_steps=50, label_smoothing=0.1,
                          layer_decay=0.75, optimizer="adamw", crop_scale=(0.8, 1.0)),
    "eval.finetune.low_label": True,  # fine-tuning ran on every low-label subset chosen
    "eval.encoder": "online",  # every run was evaluated with the online parameters
    "eval.crop_fraction": 1.0,  # the whole (host-resized) image was the evaluation view
    "dataset.host_crops": False,  # the host resized every image to dataset.image_size
    "dataset.num_workers": 0,  # threads of the trainer's process made the batches
    "dataset.worker_buffer_size": 2,
}


def with_saved_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A saved config (DIR/config.json) with the keys it predates filled in. Runs saved
  before eval.protocols ran kNN, the linear probe and one low-label subset
  (eval.low_label_fraction, eval.low_label_seed): they get exactly those protocols."""
  config = ml_collections.ConfigDict(config.to_dict())
  ev = config.eval
  if "protocols" not in ev:
    ev.protocols = f"knn,linear,lowlabel-{100 * ev.get('low_label_fraction', 0.01):g}%"
  if "low_label_seeds" not in ev:
    ev.low_label_seeds = (ev.get("low_label_seed", 0),)
  for old in ("low_label_fraction", "low_label_seed"):
    if old in ev:
      del ev[old]
  for dotted, value in _SAVED_DEFAULTS.items():
    *parents, key = dotted.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    if key not in node:
      node[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  return config


def validate_against_data(config: ml_collections.ConfigDict, image_shape: tuple[int, ...]) -> None:
  """Checks that need the dataset: the crop must fit in the (host-resized) image."""
  side = config.dataset.image_size or min(image_shape[:2])
  if config.augment.output_size > side:
    raise ConfigError(
        f"augment.output_size={config.augment.output_size} is larger than the {side}px images of "
        f"{config.dataset.name}; use at most {side} (or set dataset.image_size)")
  local = config.augment.local_crops
  if local.num > 0 and local.output_size > side:
    raise ConfigError(
        f"augment.local_crops.output_size={local.output_size} is larger than the {side}px "
        f"images of {config.dataset.name}; use at most {side}")


def _check_method_args(args, defaults, method: str, prefix: str = "method_args") -> None:
  """Unknown method_args keys (typos), recursively for mixed methods' per-method sections."""
  for key in args.keys():
    if key not in defaults:
      close = difflib.get_close_matches(key, list(defaults), n=1)
      hint = f"did you mean '{prefix}.{close[0]}'? " if close else ""
      raise ConfigError(f"config key '{prefix}.{key}' is unknown; {hint}{method} takes "
                        f"{sorted(defaults)}")
    if isinstance(defaults[key], dict):
      if not isinstance(args[key], (dict, ml_collections.ConfigDict)):
        raise ConfigError(f"{prefix}.{key}={args[key]!r} must be a section of "
                          f"{sorted(defaults[key])}")
      _check_method_args(args[key], defaults[key], key, f"{prefix}.{key}")

