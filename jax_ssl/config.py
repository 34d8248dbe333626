"""The one place that reads the experiment config and turns it into explicit arguments.

Everything downstream (models, methods, losses, data, optimizer) takes plain arguments;
only this module and the trainer's config section know the config's key names.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import optax
from flax import nnx

from jax_ssl import methods, optim
from jax_ssl.errors import ConfigError
from jax_ssl.data import augment
from jax_ssl.methods.spec import SSLModel
from jax_ssl.models import resnet


def validate(config: ml_collections.ConfigDict, device_count: int) -> None:
  """Raises ConfigError (a ValueError) with one line naming the key, the value and what is allowed."""
  def check(ok: bool, message: str):
    if not ok:
      raise ConfigError(message)

  check(config.method in methods.METHODS,
        f"method={config.method!r} is unknown; choose one of {sorted(methods.METHODS)}")
  spec = methods.get_method(config.method)
  unknown = set(config.method_args) - set(spec.default_method_args)
  check(not unknown, f"method_args has unknown keys {sorted(unknown)}; {config.method} takes "
        f"{sorted(spec.default_method_args)}")
  check(config.model.backbone in resnet.BACKBONES,
        f"model.backbone={config.model.backbone!r}; choose one of {sorted(resnet.BACKBONES)}")
  check(config.model.stem in ("cifar", "imagenet"),
        f"model.stem={config.model.stem!r}; use 'cifar' (3x3, no max-pool) or 'imagenet' (7x7 + max-pool)")
  check(config.optimizer.name in ("lars", "adamw"),
        f"optimizer.name={config.optimizer.name!r}; use 'lars' or 'adamw'")
  check(config.optimizer.lr_scaling in ("linear", "sqrt", "none"),
        f"optimizer.lr_scaling={config.optimizer.lr_scaling!r}; use 'linear', 'sqrt' or 'none'")
  for key in ("total_steps", "global_batch_size", "log_every_steps", "checkpoint_every_steps"):
    check(isinstance(config[key], int) and config[key] > 0, f"{key}={config[key]!r}; must be a positive integer")
  check(config.global_batch_size % device_count == 0,
        f"global_batch_size={config.global_batch_size} is not divisible by the {device_count} devices; "
        f"use a multiple of {device_count}")
  check(config.optimizer.base_learning_rate > 0,
        f"optimizer.base_learning_rate={config.optimizer.base_learning_rate}; must be > 0")
  check(config.optimizer.weight_decay >= 0,
        f"optimizer.weight_decay={config.optimizer.weight_decay}; must be >= 0")


def method_args(config: ml_collections.ConfigDict) -> dict[str, Any]:
  spec = methods.get_method(config.method)
  return {**spec.default_method_args, **config.method_args.to_dict()}


def view_configs(config: ml_collections.ConfigDict) -> list[augment.AugmentConfig]:
  """One AugmentConfig per view of the method (all views share `config.augment`)."""
  spec = methods.get_method(config.method)
  kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
            for k, v in config.augment.to_dict().items()}
  return [augment.AugmentConfig(**kwargs) for _ in range(spec.num_views)]


def build_model(config: ml_collections.ConfigDict, in_channels: int, seed: int) -> SSLModel:
  rngs = nnx.Rngs(seed)
  backbone = resnet.make_backbone(config.model.backbone, width=config.model.width,
                                  stem=config.model.stem, in_channels=in_channels, rngs=rngs)
  spec = methods.get_method(config.method)
  heads = spec.make_heads(backbone.feature_dim, config.heads.to_dict(), rngs)
  return SSLModel(backbone, heads)


def build_optimizer(config: ml_collections.ConfigDict
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  opt = config.optimizer
  peak = optim.scaled_learning_rate(opt.base_learning_rate, config.global_batch_size,
                                    opt.lr_scaling)
  schedule = optim.warmup_cosine(peak, opt.warmup_steps, config.total_steps)
  optimizer = optim.make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                                   momentum=opt.momentum)
  return optimizer, schedule
