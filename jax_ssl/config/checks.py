"""The checks of a typed experiment that span sections or need the devices or the data.

Each section checks its own values (`validate()` of schema.py's dataclasses and of each
method's Args/Heads, run by `Experiment.from_config`); what is left is here: the method
against the backbone and the views, the batch against the devices and gradient
accumulation, the mesh, the ViT's patches against the view sizes, and the crop against the
images (`validate_against_data`). Every refusal is one line naming the key, the value and
what is allowed (ConfigError).
"""

from __future__ import annotations

from jax_ssl import methods, sharding
from jax_ssl.config.build import dtype_refusal, view_configs
from jax_ssl.config.schema import Experiment
from jax_ssl.config.typed import check
from jax_ssl.errors import ConfigError
from jax_ssl.models import resnet, video, vit, vq


def validate(config: Experiment, device_count: int) -> None:
  """Raises ConfigError (a ValueError) with one line naming the key, the value and what is allowed."""
  spec = methods.get_method(config.method)
  views = spec.views_for(config.method_args)
  check(isinstance(views, int) and views >= 1,
        f"method_args gives {views!r} views for {config.method}; need an integer >= 1")
  _check_model(config, spec)
  check(config.global_batch_size % device_count == 0,
        f"global_batch_size={config.global_batch_size} is not divisible by the {device_count} "
        f"devices; use a multiple of {device_count}")
  check(config.global_batch_size % (config.grad_accum_steps * device_count) == 0,
        f"grad_accum_steps={config.grad_accum_steps} with global_batch_size="
        f"{config.global_batch_size} on {device_count} devices: the batch must split into "
        f"grad_accum_steps equal micro-batches, each divisible by the device count")
  exact_methods = sorted(name for name, s in methods.METHODS.items()
                         if s.embed is not None and s.embedding_loss is not None)
  check(config.grad_accum_mode != "exact" or (spec.embed is not None
                                              and spec.embedding_loss is not None),
        f"grad_accum_mode='exact' needs a method whose loss is a function of the batch's "
        f"embeddings ({', '.join(exact_methods)}); {config.method} does not declare one, use "
        f"'micro_batch'")
  check(config.eval.finetune.batch_size % device_count == 0,
        f"eval.finetune.batch_size={config.eval.finetune.batch_size}; must be a positive "
        f"multiple of the {device_count} devices")
  check(config.eval.encoder != "target" or "backbone" in spec.target_modules,
        f"eval.encoder='target' but {config.method} has no EMA target of its backbone; use "
        f"'online' or 'method'")
  _check_sharding(config, device_count)
  view_configs(config)  # per-view overrides and local crops: one line naming the bad key
  _check_clips(config)


def _check_clips(config: Experiment) -> None:
  """A method's clip needs against `config.clips` (used by video datasets only): the speed
  classes of temporal_pretext are the clips' speeds, its sort chunks split the clip; RSPNet's clips are the host's "rspnet"
  triple (a query, a key at its speed, a key at another)."""
  check(config.method != "rspnet" or (config.clips.speed_pattern == "rspnet"
                                       and len(config.clips.speeds) >= 2),
        f"method='rspnet' with clips.speed_pattern={config.clips.speed_pattern!r} and "
        f"clips.speeds={tuple(config.clips.speeds)}: its clips are a same-speed pair and an "
        f"other-speed clip; set clips.speed_pattern='rspnet' and two or more clips.speeds "
        f"(e.g. (1, 2))")
  if "temporal_pretext" in config.method.split("+"):
    from jax_ssl.methods import mixing, temporal_pretext  # pylint: disable=g-import-not-at-top
    args = config.method_args
    if config.method != "temporal_pretext":  # a mix: the component's own Args
      args = mixing.own_args(temporal_pretext.SPEC, args)
    temporal_pretext.check_clip_speeds(args, tuple(config.clips.speeds))
    temporal_pretext.check_clip_frames(args, config.clips.num_frames)


def _check_model(config: Experiment, spec: methods.MethodSpec) -> None:
  model = config.model
  backbones = (sorted(resnet.BACKBONES) + sorted(vit.BACKBONES) + sorted(vq.BACKBONES)
               + sorted(video.BACKBONES))
  check(model.backbone in backbones, f"model.backbone={model.backbone!r}; choose one of {backbones}")
  if model.backbone in video.BACKBONES:  # the 3-D CNNs: whether the data are videos is
    check(model.final_features == 0,   # checked where the dataset is known (build_backbone)
          f"model.final_features={model.final_features}: a final 1x1 conv of that width "
          f"exists for the image ResNets only (use 0 with model.backbone={model.backbone!r})")
    return
  check(not spec.backbones or model.backbone in spec.backbones,
        f"method={config.method!r} needs model.backbone in {list(spec.backbones)}; "
        f"got {model.backbone!r}")
  is_vit = model.backbone in vit.BACKBONES
  check(is_vit or not spec.patch_tokens or bool(spec.backbones),
        f"method={config.method!r} works on patch tokens and needs a ViT backbone; "
        f"model.backbone={model.backbone!r}, use one of {sorted(vit.BACKBONES)}")
  refusal = dtype_refusal(model.backbone, model.dtype)
  check(refusal is None, refusal or "")
  if is_vit:
    _check_vit(config)
  else:
    check(config.eval.linear_blocks == 1 and not config.eval.linear_avgpool,
          f"eval.linear_blocks={config.eval.linear_blocks} / eval.linear_avgpool="
          f"{config.eval.linear_avgpool} read a ViT's blocks; model.backbone="
          f"{model.backbone!r} has none: use 1 / False")
  if model.backbone in vq.BACKBONES:
    patch = model.patch_size
    check(patch >= 1 and patch & (patch - 1) == 0 and config.augment.output_size % patch == 0,
          f"model.patch_size={patch}: the VQ encoder downsamples by a power of 2 that divides "
          f"augment.output_size={config.augment.output_size}")
    check(bool(model.width), f"model.width={model.width}; the VQ encoder needs a width")
  check(not model.final_features or model.backbone in resnet.BACKBONES,
        f"model.final_features={model.final_features}: a final 1x1 conv of that width exists "
        f"for the ResNets only (use 0 with model.backbone={model.backbone!r})")


def _check_sharding(config: Experiment, device_count: int) -> None:
  """sharding and mesh_shape against each other and the devices."""
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


def _check_vit(config: Experiment) -> None:
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
  check(model.pool != "cls" or model.cls_token, "model.pool='cls' needs model.cls_token=True")
  check(depth >= 1, f"model.depth={model.depth}; must be >= 1")
  check(dim % heads == 0, f"model width {dim} is not divisible by {heads} heads; set "
                          f"model.dim / model.num_heads so that it is")
  check(model.pos_embedding != "sincos" or dim % 4 == 0,
        f"model width {dim}: sin-cos position embeddings need a multiple of 4")
  check(config.eval.linear_blocks <= depth,
        f"eval.linear_blocks={config.eval.linear_blocks} but the ViT has {depth} blocks; use "
        f"1 to {depth}")
  check(not config.eval.linear_avgpool or model.pool == "cls",
        f"eval.linear_avgpool=True adds the mean patch token beside the CLS token, and "
        f"model.pool={model.pool!r} already is that mean; set model.pool='cls' or "
        f"eval.linear_avgpool=False")
  local = config.augment.local_crops
  check(local.num == 0 or local.output_size % model.patch_size == 0,
        f"augment.local_crops.output_size={local.output_size} does not split into "
        f"model.patch_size={model.patch_size} patches; use a multiple of {model.patch_size}")


def validate_against_data(config: Experiment, image_shape: tuple[int, ...]) -> None:
  """Checks that need the dataset: the crops must fit in the (host-resized) image."""
  side = config.dataset.image_size or min(image_shape[:2])
  check(config.augment.output_size <= side,
        f"augment.output_size={config.augment.output_size} is larger than the {side}px images "
        f"of {config.dataset.name}; use at most {side} (or set dataset.image_size)")
  local = config.augment.local_crops
  check(local.num == 0 or local.output_size <= side,
        f"augment.local_crops.output_size={local.output_size} is larger than the {side}px "
        f"images of {config.dataset.name}; use at most {side}")
