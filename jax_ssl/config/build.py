"""Objects from a validated config: the method's arguments and initial state, the views, the
model (backbone + heads) and the optimizer."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping

import jax
import ml_collections
import optax
from flax import nnx

from jax_ssl import methods, optim
from jax_ssl.data import augment
from jax_ssl.errors import ConfigError
from jax_ssl.methods.spec import SSLModel
from jax_ssl.models import resnet, vit, vq


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


def evaluation_encoder(config: ml_collections.ConfigDict) -> str:
  """"online" or "target": `eval.encoder`, with "method" resolved to the method's own
  choice (`MethodSpec.evaluation_encoder`: DINO evaluates its EMA teacher)."""
  if config.eval.encoder == "method":
    return methods.get_method(config.method).evaluation_encoder
  return config.eval.encoder


def init_method_state(config: ml_collections.ConfigDict) -> Any:
  """The method's initial state (queues, centers), sized from its arguments and heads."""
  spec = methods.get_method(config.method)
  return spec.init_method_state(method_args(config), config.heads.to_dict())


def _augment_config(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str
                    ) -> augment.AugmentConfig:
  fields = {f.name for f in dataclasses.fields(augment.AugmentConfig)}
  for key in overrides:
    if key not in fields:
      close = difflib.get_close_matches(key, sorted(fields), n=1)
      hint = f"did you mean '{close[0]}'?" if close else f"allowed: {sorted(fields)}"
      raise ConfigError(f"{where} overrides unknown augmentation key '{key}'; {hint}")
  kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
            for k, v in {**base, **overrides}.items()}
  try:
    return augment.AugmentConfig(**kwargs)
  except ValueError as e:
    raise ConfigError(f"{where}: {e}") from None


def view_configs(config: ml_collections.ConfigDict) -> list[augment.AugmentConfig]:
  """One AugmentConfig per view: the method's global views (`config.augment`, view i updated
  by `augment.view_overrides[i]` if given), then `augment.local_crops.num` local crops
  (`output_size` and `crop_scale` of `local_crops`, its `overrides` on top)."""
  spec = methods.get_method(config.method)
  aug = config.augment.to_dict()
  overrides, local = aug.pop("view_overrides"), aug.pop("local_crops")
  num_global = spec.views_for(method_args(config))
  if len(overrides) > num_global:
    raise ConfigError(f"augment.view_overrides has {len(overrides)} entries for the "
                      f"{num_global} global views of {config.method}; give at most {num_global}")
  views = [_augment_config(aug, dict(overrides[i]) if i < len(overrides) else {},
                           f"augment.view_overrides[{i}]") for i in range(num_global)]
  if local["num"] > 0:
    if not spec.local_views:
      users = sorted(name for name, m in methods.METHODS.items() if m.local_views)
      users = ", ".join(users[:-1]) + " and " + users[-1]
      raise ConfigError(f"augment.local_crops.num={local['num']} but {config.method} does not "
                        f"use multi-crop local views; set it to 0 ({users} use them)")
    local_aug = {**aug, "output_size": local["output_size"], "crop_scale": local["crop_scale"]}
    views += [_augment_config(local_aug, dict(local["overrides"]), "augment.local_crops")
              ] * local["num"]
  return views


def backbone_dtypes(backbone: str) -> tuple[str, ...]:
  """The `model.dtype` values a backbone computes in (parameters are float32 in all): the
  ResNets and ViTs float32 or bfloat16, the VQ tokenizer's encoder float32 only."""
  if backbone in vit.BACKBONES:
    return tuple(sorted(vit.DTYPES))
  if backbone in resnet.BACKBONES:
    return tuple(sorted(resnet.DTYPES))
  return ("float32",)


def dtype_refusal(backbone: str, dtype: str) -> str | None:
  """The one-line refusal of a `model.dtype` the backbone cannot honour; None if it can."""
  dtypes = backbone_dtypes(backbone)
  if dtype in dtypes:
    return None
  return (f"model.dtype={dtype!r}: model.backbone={backbone!r} computes in "
          f"{' or '.join(dtypes)} only; set model.dtype to {' or '.join(map(repr, dtypes))}")


def build_backbone(config: ml_collections.ConfigDict, in_channels: int,
                   rngs: nnx.Rngs) -> nnx.Module:
  """The ResNet, ViT or VQ encoder named by `model.backbone`, computing in `model.dtype`; a
  ViT takes `augment.output_size` images."""
  model = config.model
  if dtype_refusal(model.backbone, model.dtype):
    raise ConfigError(dtype_refusal(model.backbone, model.dtype))
  if model.backbone in vit.BACKBONES:
    return vit.make_vit(model.backbone, image_size=config.augment.output_size,
                        patch_size=model.patch_size, in_channels=in_channels, depth=model.depth,
                        dim=model.dim, num_heads=model.num_heads,
                        pos_embedding=model.pos_embedding, cls_token=model.cls_token,
                        pool=model.pool, dtype=model.dtype, remat=model.remat, rngs=rngs)
  if model.backbone in vq.BACKBONES:
    return vq.make_encoder(model.backbone, width=model.width, patch_size=model.patch_size,
                           in_channels=in_channels, rngs=rngs)
  return resnet.make_backbone(model.backbone, width=model.width, stem=model.stem,
                              in_channels=in_channels, final_features=model.final_features,
                              dtype=model.dtype, rngs=rngs)


def build_model(config: ml_collections.ConfigDict, in_channels: int, seed: int, *,
                num_classes: int | None = None) -> SSLModel:
  """Backbone + the method's heads (+ heads["online_probe"], a linear classifier over
  `num_classes`, with `config.online_probe`)."""
  rngs = nnx.Rngs(seed)
  backbone = build_backbone(config, in_channels, rngs)
  spec = methods.get_method(config.method)
  try:
    heads = spec.make_heads(backbone if spec.patch_tokens else backbone.feature_dim,
                            config.heads.to_dict(), method_args(config), rngs)
  except KeyError as e:
    raise ConfigError(f"config key 'heads.{e.args[0]}' is missing; {config.method}'s heads "
                      f"need it (see its experiment files)") from None
  if config.online_probe:
    if not num_classes:
      raise ConfigError(f"online_probe=True needs class labels, and dataset "
                        f"{config.dataset.name!r} has none (an image folder without class "
                        f"subfolders); set --config.online_probe=False")
    # Built after the method's heads: the backbone and those heads start as without it.
    heads = {**heads, "online_probe": nnx.Linear(backbone.feature_dim, num_classes, rngs=rngs)}
  return SSLModel(backbone, heads)


def build_optimizer(config: ml_collections.ConfigDict
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  opt = config.optimizer
  peak = optim.scaled_learning_rate(opt.base_learning_rate, config.global_batch_size,
                                    opt.lr_scaling)
  schedule = optim.warmup_cosine(peak, opt.warmup_steps, config.total_steps)
  optimizer = optim.make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                                   momentum=opt.momentum,
                                   trust_coefficient=opt.trust_coefficient,
                                   # configs saved before beta2 existed (re-evaluation) used 0.999
                                   beta2=opt.get("beta2", 0.999))
  if config.online_probe:
    # The probe head has its own optimizer (solo-learn gives its classifier its own param
    # group): the pretraining optimizer's schedule, weight decay and LARS are not its.
    from jax_ssl.step import online_probe_optimizer  # pylint: disable=g-import-not-at-top
    optimizer = optax.multi_transform(
        {"model": optimizer, "online_probe": online_probe_optimizer()},
        lambda params: jax.tree_util.tree_map_with_path(
            lambda path, _: "online_probe" if _is_online_probe(path) else "model", params))
  return optimizer, schedule


def _is_online_probe(path) -> bool:
  keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
  return keys[:2] == ["heads", "online_probe"]
