"""Objects from a typed experiment (schema.Experiment): the method's frozen teacher and
initial state, the views, the model (backbone + heads) and the optimizer.

The method's side is built once per run as a `BuiltMethod` (`build_method`): its spec, its
`Args` and `Heads` (already typed by `Experiment.from_config`), and, for a spec with
`load_teacher`, the frozen teacher it reads from another run's files: the only disk read a
method causes, done here, in the build step, and once (the model's heads, the initial
method state and the step's `teacher_graphdef` all take it from the same `BuiltMethod`).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping

import optax
from flax import nnx

from jax_ssl import backends, methods, online_probe, optim
from jax_ssl.data import augment
from jax_ssl.config import typed
from jax_ssl.config.schema import Experiment
from jax_ssl.errors import ConfigError
from jax_ssl.methods.spec import MethodSpec, SSLModel, Teacher
from jax_ssl.models import resnet, vit, vq


@dataclasses.dataclass(frozen=True)
class BuiltMethod:
  """The method's side of a run, built once (`build_method`): its spec, typed Args and
  Heads, and the frozen teacher its spec loads (None without `load_teacher`)."""

  spec: MethodSpec
  args: Any
  heads: Any
  teacher: Teacher | None = None

  @property
  def teacher_graphdef(self) -> Any:
    """What `make_train_step(teacher_graphdef=)` takes: the teacher's structure, or None."""
    return None if self.teacher is None else self.teacher.graphdef

  def teacher_kwargs(self) -> dict[str, Any]:
    """`teacher=` for make_heads / init_method_state of a spec with `load_teacher`."""
    return {} if self.spec.load_teacher is None else {"teacher": self.teacher}


def build_method(config: Experiment) -> BuiltMethod:
  """`config.method`'s spec, Args and Heads, and its teacher loaded (from disk) here, once;
  pass the result to `build_model` and `init_method_state` (`method=`) and its
  `teacher_graphdef` to `make_train_step`."""
  spec = methods.get_method(config.method)
  args = config.method_args
  teacher = spec.load_teacher(args) if spec.load_teacher is not None else None
  return BuiltMethod(spec, args, config.heads, teacher)


def evaluation_encoder(config: Experiment) -> str:
  """"online" or "target": `eval.encoder`, with "method" resolved to the method's own
  choice (`MethodSpec.evaluation_encoder`: DINO evaluates its EMA teacher)."""
  if config.eval.encoder == "method":
    return methods.get_method(config.method).evaluation_encoder
  return config.eval.encoder


def init_method_state(config: Experiment, *,
                      method: BuiltMethod | None = None) -> Any:
  """The method's initial state (queues, centers, a teacher's parameters), sized from its
  arguments and heads; `method`: the run's `build_method(config)` (None: built here)."""
  method = method or build_method(config)
  return method.spec.init_method_state(method.args, method.heads, **method.teacher_kwargs())


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


def view_configs(config: Experiment) -> list[augment.AugmentConfig]:
  """One AugmentConfig per view: the method's global views (`config.augment`, view i updated
  by `augment.view_overrides[i]` if given), then `augment.local_crops.num` local crops
  (`output_size` and `crop_scale` of `local_crops`, its `overrides` on top)."""
  spec = methods.get_method(config.method)
  aug = typed.to_dict(config.augment)
  overrides, local = aug.pop("view_overrides"), aug.pop("local_crops")
  num_global = spec.views_for(config.method_args)
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


def clip_sampling(config: Experiment):
  """The host's clip sampling of a video run (data/clips.py ClipSampling): `config.clips`
  with one clip per global view of the method."""
  from jax_ssl.data import clips  # pylint: disable=g-import-not-at-top
  spec = methods.get_method(config.method)
  sampling = clips.ClipSampling(
      num_frames=config.clips.num_frames, stride=config.clips.stride,
      num_clips=spec.views_for(config.method_args), starts=config.clips.starts,
      speeds=tuple(int(s) for s in config.clips.speeds),
      speed_pattern=config.clips.speed_pattern)
  sampling.validate()
  return sampling


def build_backbone(config: Experiment, in_channels: int, rngs: nnx.Rngs, *,
                   num_frames: int | None = None) -> nnx.Module:
  """The ResNet, ViT or VQ encoder named by `model.backbone`, computing in `model.dtype`; a
  ViT takes `augment.output_size` images. `num_frames`: the clips' frames of a video run
  (None: images): a 3-D CNN (models/video.py), or for a ViT name a VideoViT of
  `model.tubelet_size` x patch x patch tubelets (models/video_vit.py)."""
  model = config.model
  if num_frames is None and model.backbone in {*resnet.BACKBONES, *vit.BACKBONES,
                                               *vq.BACKBONES}:
    return _image_backbone(config, in_channels, rngs)
  from jax_ssl.models import video  # pylint: disable=g-import-not-at-top
  if model.backbone in video.BACKBONES:
    if num_frames is None:
      raise ConfigError(f"model.backbone={model.backbone!r} is a video backbone and "
                        f"dataset {config.dataset.name!r} has images; use an image backbone "
                        f"(resnet_small, resnet50, vit_small, ...)")
    return video.make_video_backbone(model.backbone, in_channels=in_channels,
                                     width=model.width, dtype=model.dtype, rngs=rngs)
  if dtype_refusal(model.backbone, model.dtype):
    raise ConfigError(dtype_refusal(model.backbone, model.dtype))
  if num_frames is not None and model.backbone in vit.BACKBONES:
    from jax_ssl.models import video_vit  # pylint: disable=g-import-not-at-top
    default_dim, default_depth, default_heads = vit.BACKBONES[model.backbone]
    try:
      return video_vit.VideoViT(
          image_size=config.augment.output_size, num_frames=num_frames,
          patch_size=model.patch_size, tubelet_size=model.tubelet_size,
          in_channels=in_channels, dim=model.dim or default_dim,
          depth=default_depth if model.depth is None else model.depth,
          num_heads=model.num_heads or default_heads, pos_embedding=model.pos_embedding,
          cls_token=model.cls_token, pool=model.pool, dtype=vit.DTYPES[model.dtype],
          remat=model.remat, qk_norm=model.qk_norm, mlp=model.mlp,
          layer_scale=model.layer_scale, num_registers=model.num_registers, rngs=rngs)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  if num_frames is not None:
    raise ConfigError(f"model.backbone={model.backbone!r} takes images and dataset "
                      f"{config.dataset.name!r} has videos; use a video backbone "
                      f"({', '.join(sorted(video.BACKBONES))}) or a ViT (vit_tiny, ...)")
  return _image_backbone(config, in_channels, rngs)


def _image_backbone(config: Experiment, in_channels: int, rngs: nnx.Rngs) -> nnx.Module:
  model = config.model
  if dtype_refusal(model.backbone, model.dtype):
    raise ConfigError(dtype_refusal(model.backbone, model.dtype))
  if model.backbone in vit.BACKBONES:
    try:  # what needs the width and heads together (rope: head width % 4) is checked there
      return vit.make_vit(
          model.backbone, image_size=config.augment.output_size, patch_size=model.patch_size,
          in_channels=in_channels, depth=model.depth, dim=model.dim,
          num_heads=model.num_heads, pos_embedding=model.pos_embedding,
          cls_token=model.cls_token, pool=model.pool, dtype=model.dtype, remat=model.remat,
          causal=model.causal, rope=model.rope, qk_norm=model.qk_norm, mlp=model.mlp,
          layer_scale=model.layer_scale, num_registers=model.num_registers, rngs=rngs)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  if model.backbone in vq.BACKBONES:
    return vq.make_encoder(model.backbone, width=model.width, patch_size=model.patch_size,
                           in_channels=in_channels, rngs=rngs)
  return resnet.make_backbone(model.backbone, width=model.width, stem=model.stem,
                              in_channels=in_channels, final_features=model.final_features,
                              dtype=model.dtype, rngs=rngs,
                              backend=backends.select(config.backend))


def build_model(config: Experiment, in_channels: int, seed: int, *,
                num_classes: int | None = None, method: BuiltMethod | None = None,
                num_frames: int | None = None) -> SSLModel:
  """Backbone + the method's heads (+ heads["online_probe"], a linear classifier over
  `num_classes`, with `config.online_probe`); `method`: the run's `build_method(config)`
  (None: built here); `num_frames`: a video run's frames per clip (`build_backbone`)."""
  method = method or build_method(config)
  rngs = nnx.Rngs(seed)
  backbone = build_backbone(config, in_channels, rngs, num_frames=num_frames)
  spec = method.spec
  if config.model.causal and not spec.patch_tokens:
    raise ConfigError(f"model.causal=True with method={config.method!r}, which trains on the "
                      f"pooled features (always bidirectional): the causal mask applies to the "
                      f"token API of token methods (nepa, mae, ...); set model.causal=False")
  # The heads' BatchNorms from the backbone's speed backend (make_heads takes none).
  with backends.use(backends.select(config.backend)):
    heads = spec.make_heads(backbone if spec.patch_tokens else backbone.feature_dim,
                            method.heads, method.args, rngs, **method.teacher_kwargs())
  if config.online_probe:
    if not num_classes:
      raise ConfigError(f"online_probe=True needs class labels, and dataset "
                        f"{config.dataset.name!r} has none (an image folder without class "
                        f"subfolders); set --config.online_probe=False")
    # Built after the method's heads: the backbone and those heads start as without it.
    heads = {**heads, online_probe.HEAD: online_probe.make_head(backbone.feature_dim,
                                                                 num_classes, rngs)}
  return SSLModel(backbone, heads)


def build_optimizer(config: Experiment
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  opt = config.optimizer
  peak = optim.scaled_learning_rate(opt.base_learning_rate, config.global_batch_size,
                                    opt.lr_scaling)
  schedule = optim.warmup_cosine(peak, opt.warmup_steps, config.total_steps)
  optimizer = optim.make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                                   momentum=opt.momentum,
                                   trust_coefficient=opt.trust_coefficient, beta2=opt.beta2,
                                   weight_decay_end=opt.weight_decay_end,
                                   total_steps=config.total_steps)
  if config.online_probe:  # the probe head has its own optimizer (online_probe.py)
    optimizer = online_probe.with_optimizer(optimizer)
  return optimizer, schedule
