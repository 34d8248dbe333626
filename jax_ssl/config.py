"""The one place that reads the experiment config and turns it into explicit arguments.

Everything downstream (models, methods, losses, data, optimizer) takes plain arguments;
only this module and the trainer's config section know the config's key names.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

import ml_collections
import optax
from flax import nnx

from jax_ssl import methods, optim
from jax_ssl.errors import ConfigError
from jax_ssl.data import augment
from jax_ssl.methods.spec import SSLModel
from jax_ssl.models import resnet


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
                "train_split": str, "test_split": str, "read_threads": int, "image_size": int},
    "augment": {"output_size": int, "crop_scale": _PAIR, "crop_ratio": _PAIR,
                "flip_prob": _NUMBER, "jitter_prob": _NUMBER, "brightness": _NUMBER,
                "contrast": _NUMBER, "saturation": _NUMBER, "hue": _NUMBER,
                "grayscale_prob": _NUMBER, "blur_prob": _NUMBER, "blur_sigma": _PAIR,
                "solarize_prob": _NUMBER, "solarize_threshold": _NUMBER},
    "model": {"backbone": str, "width": (int, type(None)), "stem": str},
    "heads": FREE,
    "optimizer": {"name": str, "base_learning_rate": _NUMBER, "lr_scaling": str,
                  "weight_decay": _NUMBER, "momentum": _NUMBER, "warmup_steps": int,
                  "trust_coefficient": _NUMBER},
    "seed": int, "global_batch_size": int, "grad_accum_steps": int, "total_steps": int,
    "log_every_steps": int,
    "checkpoint_every_steps": int, "keep_checkpoints": int, "evaluate": bool,
    "skip_nonfinite_updates": bool,
    "eval": {"batch_size": int, "knn_k": int, "knn_temperature": _NUMBER,
             "low_label_fraction": _NUMBER, "low_label_seed": int, "baselines": bool,
             "train_limit": int, "test_limit": int},
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
  check(config.model.backbone in resnet.BACKBONES,
        f"model.backbone={config.model.backbone!r}; choose one of {sorted(resnet.BACKBONES)}")
  check(config.model.stem in ("cifar", "imagenet"),
        f"model.stem={config.model.stem!r}; use 'cifar' (3x3, no max-pool) or 'imagenet' (7x7 + max-pool)")
  check(config.optimizer.name in ("lars", "adamw", "sgd"),
        f"optimizer.name={config.optimizer.name!r}; use 'lars', 'adamw' or 'sgd'")
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
  check(0 < config.eval.low_label_fraction <= 1,
        f"eval.low_label_fraction={config.eval.low_label_fraction}; must be in (0, 1]")
  for key in ("batch_size", "knn_k"):
    check(config.eval[key] > 0, f"eval.{key}={config.eval[key]}; must be positive")
  check(config.keep_checkpoints > 0, f"keep_checkpoints={config.keep_checkpoints}; must be >= 1")


# Keys that fix the shapes and structure of the saved TrainState: a checkpoint written
# under other values cannot be resumed.
STATE_KEYS = ("method", "model", "heads", "optimizer.name", "dataset.name", "dataset.image_size")


def check_resume_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses (one line) to resume a workdir whose checkpoints come from another model."""
  saved_path = os.path.join(workdir, "config.json")
  checkpoints = os.path.join(workdir, "checkpoints")
  if not (os.path.exists(saved_path) and os.path.isdir(checkpoints)
          and any(name.isdigit() for name in os.listdir(checkpoints))):
    return
  with open(saved_path) as f:
    saved = ml_collections.ConfigDict(json.load(f))
  current = ml_collections.ConfigDict(json.loads(config.to_json()))
  for key in STATE_KEYS:
    old, new = _lookup(saved, key), _lookup(current, key)
    if old != new:
      raise ConfigError(
          f"{workdir} holds checkpoints trained with {key}={old}, but this config has {key}={new}; "
          f"use a new --workdir, or the original config to resume")


def _lookup(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if part not in node:
      return None
    node = node[part]
  return node.to_dict() if isinstance(node, ml_collections.ConfigDict) else node


def validate_against_data(config: ml_collections.ConfigDict, image_shape: tuple[int, ...]) -> None:
  """Checks that need the dataset: the crop must fit in the (host-resized) image."""
  side = config.dataset.image_size or min(image_shape[:2])
  if config.augment.output_size > side:
    raise ConfigError(
        f"augment.output_size={config.augment.output_size} is larger than the {side}px images of "
        f"{config.dataset.name}; use at most {side} (or set dataset.image_size)")


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


def _merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
  merged = dict(defaults)
  for key, value in overrides.items():
    merged[key] = (_merge(defaults[key], value) if isinstance(defaults.get(key), dict)
                   else value)
  return merged


def method_args(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The objective's keyword arguments: the method's defaults updated by `config.method_args`."""
  spec = methods.get_method(config.method)
  return _merge(spec.default_method_args, config.method_args.to_dict())


def init_method_state(config: ml_collections.ConfigDict) -> Any:
  """The method's initial state (queues, centers), sized from its arguments and heads."""
  spec = methods.get_method(config.method)
  return spec.init_method_state(method_args(config), config.heads.to_dict())


def view_configs(config: ml_collections.ConfigDict) -> list[augment.AugmentConfig]:
  """One AugmentConfig per view of the method (all views share `config.augment`)."""
  spec = methods.get_method(config.method)
  kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
            for k, v in config.augment.to_dict().items()}
  return [augment.AugmentConfig(**kwargs) for _ in range(spec.views_for(method_args(config)))]


def build_model(config: ml_collections.ConfigDict, in_channels: int, seed: int) -> SSLModel:
  rngs = nnx.Rngs(seed)
  backbone = resnet.make_backbone(config.model.backbone, width=config.model.width,
                                  stem=config.model.stem, in_channels=in_channels, rngs=rngs)
  spec = methods.get_method(config.method)
  try:
    heads = spec.make_heads(backbone.feature_dim, config.heads.to_dict(), method_args(config),
                            rngs)
  except KeyError as e:
    raise ConfigError(f"config key 'heads.{e.args[0]}' is missing; {config.method}'s heads "
                      f"need it (see its experiment files)") from None
  return SSLModel(backbone, heads)


def build_optimizer(config: ml_collections.ConfigDict
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  opt = config.optimizer
  peak = optim.scaled_learning_rate(opt.base_learning_rate, config.global_batch_size,
                                    opt.lr_scaling)
  schedule = optim.warmup_cosine(peak, opt.warmup_steps, config.total_steps)
  optimizer = optim.make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                                   momentum=opt.momentum,
                                   trust_coefficient=opt.trust_coefficient)
  return optimizer, schedule
