"""The typed experiment: frozen dataclasses whose defaults are the schema.

An experiment file (`get_config(arg)`, an ml_collections ConfigDict, big_vision's style)
sets only what differs from these defaults; `--config.KEY=VALUE` overrides are typed by
them; `Experiment.from_config` turns the result into these objects once, at the entry
point, and nothing below it reads a ConfigDict. Each section checks its own values in
`validate()` (one line naming the key, the value and what is allowed); what spans sections
or needs the device count is `checks.validate`. The method's own hyper-parameters and head
sizes are the method's `Args` and `Heads` dataclasses (jax_ssl/methods/<name>.py).

Adding a key: a field with its default (and, if it has limits, a line of `validate()`) in
the section below; the consumer reads it from the typed object it is handed.

The defaults are ImageNet-scale values (SimCLR's ImageNet view on a ResNet-50, the input
decoded and cropped on the host by grain workers), what a run on accelerators starts from;
the datasets' base files (experiments/<dataset>/_*_base.py) set what their data changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from jax_ssl.config.typed import check, from_mapping, to_dict
# The `eval` section (its own module: the evaluation's keys), one import path with the rest.
from jax_ssl.config.eval_schema import (  # noqa: F401  (re-exported)
    EVAL_ENCODERS, FINETUNE_OPTIMIZERS, Evaluation, Finetune, scale_pair as _scale_pair)

OPTIMIZERS = ("lars", "adamw", "sgd")
LR_SCALINGS = ("linear", "sqrt", "none")
GRAD_ACCUM_MODES = ("micro_batch", "exact")
STEMS = ("cifar", "stride2", "imagenet")
BACKENDS = ("auto", "xla", "cpu_kernels")
HOST_RESIZES = ("opencv", "pil")  # data/host_views.py RESIZES


def _unit(section: str, obj: Any, *names: str) -> None:
  for name in names:
    value = getattr(obj, name)
    check(0 <= value <= 1, f"{section}.{name}={value}; must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Where the images come from and how the host prepares them."""

  name: str = "imagenet2012"
  data_dir: str | None = None  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets
  source_dir: str = ""  # fashion_mnist: the IDX files to build it from
  train_split: str = "train"
  test_split: str = "validation"
  read_threads: int = 2
  image_size: int = 256  # the host's resize (shorter side); 0: keep the stored size
  # variable-size images: each view's crop made on the host (data/host_views.py)
  host_crops: bool = True
  # how the host resizes each crop (data/host_views.py): "opencv" (bilinear as big_vision's
  # inception crop, a Gaussian pyramid first past a 2x shrink) or "pil" (torchvision's
  # antialiased bilinear, ~3.6x slower per 224 px view)
  host_resize: str = "opencv"
  # grain worker processes (-1: one per core but one, at most 32; 0: threads of the
  # trainer's process) and the finished batches each keeps ready
  num_workers: int = -1
  worker_buffer_size: int = 2
  # a split of fixed-size records of at most this many bytes decoded is read once into host
  # memory (data/in_memory.py: no per-record parsing at each step); 0: every read from disk
  in_memory_max_bytes: int = 2**30

  def validate(self) -> None:
    check(self.num_workers >= -1,
          f"dataset.num_workers={self.num_workers}; use -1 (one per core but one), 0 (threads "
          f"of the trainer only) or a number of worker processes")
    check(self.read_threads >= 1, f"dataset.read_threads={self.read_threads}; must be >= 1")
    check(self.worker_buffer_size >= 1,
          f"dataset.worker_buffer_size={self.worker_buffer_size}; must be >= 1")
    check(self.in_memory_max_bytes >= 0,
          f"dataset.in_memory_max_bytes={self.in_memory_max_bytes}; must be >= 0 (0: off)")
    check(self.host_resize in HOST_RESIZES,
          f"dataset.host_resize={self.host_resize!r}; use one of {HOST_RESIZES}")
    check(self.image_size >= 0, f"dataset.image_size={self.image_size}; must be >= 0 (0: the "
                                f"stored size)")


@dataclasses.dataclass(frozen=True)
class LocalCrops:
  """Multi-crop (DINO, SwAV): `num` smaller crops after the global views."""

  num: int = 0
  output_size: int = 96
  crop_scale: tuple[float, float] = (0.05, 0.4)
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    check(self.num >= 0, f"augment.local_crops.num={self.num}; must be >= 0")
    check(self.output_size > 0,
          f"augment.local_crops.output_size={self.output_size}; must be > 0")
    _scale_pair("augment.local_crops.crop_scale", self.crop_scale)


@dataclasses.dataclass(frozen=True)
class Augment:
  """The global views (SimCLR's ImageNet view by default)."""

  output_size: int = 224
  crop_scale: tuple[float, float] = (0.08, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.5
  jitter_prob: float = 0.8
  brightness: float = 0.8
  contrast: float = 0.8
  saturation: float = 0.8
  hue: float = 0.2
  grayscale_prob: float = 0.2
  blur_prob: float = 0.5
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  solarize_prob: float = 0.0
  solarize_threshold: float = 0.5
  # per-global-view overrides of the keys above (BYOL/DINO's asymmetric views)
  view_overrides: tuple[Mapping[str, Any], ...] = ()
  local_crops: LocalCrops = LocalCrops()

  def validate(self) -> None:
    check(self.output_size > 0, f"augment.output_size={self.output_size}; must be > 0")
    _scale_pair("augment.crop_scale", self.crop_scale)
    _unit("augment", self, "flip_prob", "jitter_prob", "grayscale_prob", "blur_prob",
          "solarize_prob")


@dataclasses.dataclass(frozen=True)
class Clips:
  """Video datasets: how the host samples each video's clips (jax_ssl/data/clips.py
  ClipSampling; one clip per view of the method). Ignored for images."""

  num_frames: int = 16  # frames per clip
  stride: int = 1  # frame step at playback speed 1
  # where the clips of one video start: "uniform" (each independently), "cvrl" (CVRL's
  # decreasing-density interval between two clips), "same" (one start for all)
  starts: str = "uniform"
  speeds: tuple[int, ...] = (1,)  # playback speeds: a clip's frame step is stride * speed
  # how the clips of a video draw their speeds: "independent", "rspnet" (clips.py)
  speed_pattern: str = "independent"

  def validate(self) -> None:
    check(self.num_frames >= 1, f"clips.num_frames={self.num_frames}; must be >= 1")
    check(self.stride >= 1, f"clips.stride={self.stride}; must be >= 1")
    check(len(self.speeds) >= 1 and all(int(s) >= 1 for s in self.speeds),
          f"clips.speeds={tuple(self.speeds)}; give one or more speeds >= 1, e.g. (1, 2)")


@dataclasses.dataclass(frozen=True)
class Model:
  """The backbone (the method's heads are its `Heads`)."""

  backbone: str = "resnet50"
  width: int | None = 64
  stem: str = "imagenet"
  final_features: int = 0  # ResNets: > 0 adds a final 1x1 conv to this width
  # compute dtype of every backbone ("float32", "bfloat16"; parameters float32)
  dtype: str = "float32"
  # ViT backbones (vit_tiny ... vit_huge) only; None = the named size's value
  patch_size: int = 16
  pos_embedding: str = "sincos"
  cls_token: bool = True
  pool: str = "gap"
  remat: bool = False
  depth: int | None = None
  dim: int | None = None
  num_heads: int | None = None
  # ViT options (models/vit.py, vit_layers.py; the defaults are the plain ViT): causal
  # attention in the token API (pooled features stay bidirectional, as NEPA fine-tunes),
  # 2-D rotary embeddings (pos_embedding may then be "none"), LayerNorm on q and k, the MLP
  # ("gelu" or DINOv2's "swiglu"), LayerScale's initial gamma (None: off), register tokens
  causal: bool = False
  rope: bool = False
  qk_norm: bool = False
  mlp: str = "gelu"
  layer_scale: float | None = None
  num_registers: int = 0
  # a ViT on video clips (models/video_vit.py): frames per tubelet (tubelets t x p x p)
  tubelet_size: int = 2

  def validate(self) -> None:
    check(self.stem in STEMS, f"model.stem={self.stem!r}; use 'cifar' (3x3, no max-pool), "
                              f"'stride2' (3x3 stride 2, no max-pool) or 'imagenet' (7x7 + "
                              f"max-pool)")
    check(self.final_features >= 0, f"model.final_features={self.final_features}; must be >= 0")
    check(self.mlp in ("gelu", "swiglu"),  # models/vit_layers.py MLPS
          f"model.mlp={self.mlp!r}; use 'gelu' or 'swiglu'")
    check(self.layer_scale is None or self.layer_scale > 0,
          f"model.layer_scale={self.layer_scale}; must be > 0 (e.g. 1e-5), or None: no "
          f"LayerScale")
    check(self.num_registers >= 0, f"model.num_registers={self.num_registers}; must be >= 0")
    check(self.tubelet_size >= 1, f"model.tubelet_size={self.tubelet_size}; must be >= 1")
    check(self.pos_embedding != "none" or self.rope,
          "model.pos_embedding='none' leaves the ViT without positions; set model.rope=True "
          "or use 'sincos' / 'learned'")


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """The pretraining optimizer: peak rate base_learning_rate scaled by the global batch
  (lr_scaling), linear warmup then cosine decay over total_steps."""

  name: str = "lars"
  base_learning_rate: float = 0.3
  lr_scaling: str = "linear"
  weight_decay: float = 1e-6
  momentum: float = 0.9  # SGD/LARS momentum, AdamW's beta1
  warmup_steps: int = 0
  trust_coefficient: float = 0.001  # LARS eta
  beta2: float = 0.999  # AdamW only
  # adamw/sgd: the decay moves from weight_decay to this on a cosine over total_steps
  # (DINO, I-JEPA: 0.04 -> 0.4); None: constant
  weight_decay_end: float | None = None

  def validate(self) -> None:
    check(self.name in OPTIMIZERS, f"optimizer.name={self.name!r}; use 'lars', 'adamw' or 'sgd'")
    check(0 <= self.beta2 < 1,
          f"optimizer.beta2={self.beta2}; must be in [0, 1) (AdamW's 2nd-moment decay)")
    check(self.trust_coefficient > 0,
          f"optimizer.trust_coefficient={self.trust_coefficient}; must be > 0 (LARS eta)")
    check(self.lr_scaling in LR_SCALINGS,
          f"optimizer.lr_scaling={self.lr_scaling!r}; use 'linear', 'sqrt' or 'none'")
    check(self.base_learning_rate > 0,
          f"optimizer.base_learning_rate={self.base_learning_rate}; must be > 0")
    check(self.weight_decay >= 0, f"optimizer.weight_decay={self.weight_decay}; must be >= 0")
    check(self.warmup_steps >= 0, f"optimizer.warmup_steps={self.warmup_steps}; must be >= 0")
    check(self.weight_decay_end is None or self.weight_decay_end >= 0,
          f"optimizer.weight_decay_end={self.weight_decay_end}; must be >= 0 (or None: a "
          f"constant optimizer.weight_decay)")
    check(self.weight_decay_end is None or self.name != "lars",
          f"optimizer.weight_decay_end={self.weight_decay_end} with optimizer.name='lars'; "
          f"a scheduled decay needs 'adamw' or 'sgd' (or set weight_decay_end=None)")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One run: the method (its typed `method_args` and `heads`), data, views, model,
  optimisation, checkpointing, sharding, speed backend and evaluation."""

  method: str
  method_args: Any = None  # the method's Args (built by from_config)
  heads: Any = None  # the method's Heads
  dataset: Dataset = Dataset()
  clips: Clips = Clips()  # video datasets only
  augment: Augment = Augment()
  model: Model = Model()
  optimizer: Optimizer = Optimizer()
  seed: int = 0
  global_batch_size: int = 256
  grad_accum_steps: int = 1  # > 1: the mean gradient of this many micro-batches
  # How grad_accum_steps > 1 splits the loss. "micro_batch": each micro-batch's loss on the
  # micro-batch alone (negatives and batch statistics see global_batch_size /
  # grad_accum_steps examples, the learning rate is scaled by the global batch). "exact":
  # the whole batch's loss (GradCache), for methods that declare embed and embedding_loss.
  grad_accum_mode: str = "micro_batch"
  total_steps: int = 1000
  log_every_steps: int = 100
  # every this many steps, RankMe and the normalised std of the training batch's backbone
  # features, logged as diagnostics/* with the next log line (jax_ssl/diagnostics.py); 0: off
  diagnostics_every_steps: int = 500
  checkpoint_every_steps: int = 2000
  keep_checkpoints: int = 2
  evaluate: bool = True
  skip_nonfinite_updates: bool = False  # True: skip NaN/Inf steps instead of stopping
  # a linear classifier on stop-gradient backbone features of the first view, trained
  # alongside (jax_ssl/online_probe.py); logs online_probe/accuracy and online_probe/loss
  online_probe: bool = False
  # "replicated": every device holds the whole train state; "fsdp": the parameters,
  # optimizer state and EMA targets split over the devices (jax_ssl/sharding.py)
  sharding: str = "replicated"
  # () one `data` axis over all devices; (data, fsdp) a 2-D mesh, -1 for the devices left
  # (the batch split over both axes, the state sharded over `fsdp`): sharding="fsdp" only
  mesh_shape: tuple[int, ...] = ()
  fsdp_min_bytes: int = 64 * 2**10  # arrays of at most this many bytes stay replicated
  # the models' convolution and normalisation (jax_ssl/backends): "xla", "cpu_kernels" (the
  # C++ kernels of a CPU host), "auto" (cpu_kernels on a CPU where they apply, else xla)
  backend: str = "auto"
  eval: Evaluation = Evaluation()

  def validate(self) -> None:
    for key in ("total_steps", "global_batch_size", "log_every_steps",
                "checkpoint_every_steps", "keep_checkpoints", "grad_accum_steps"):
      check(getattr(self, key) > 0, f"{key}={getattr(self, key)!r}; must be a positive integer")
    check(self.diagnostics_every_steps >= 0,
          f"diagnostics_every_steps={self.diagnostics_every_steps}; must be >= 0 (0: no "
          f"collapse diagnostics during training)")
    from jax_ssl.evaluate import protocols  # pylint: disable=g-import-not-at-top
    check(not (self.model.backbone == "vq_encoder"
               and protocols.parse_protocols(self.eval.protocols).attentive),
          "eval.protocols 'attentive' needs patch tokens of a ViT or ResNet backbone, not "
          "model.backbone='vq_encoder'; drop 'attentive' from eval.protocols")
    check(self.grad_accum_mode in GRAD_ACCUM_MODES,
          f"grad_accum_mode={self.grad_accum_mode!r}; use 'micro_batch' or 'exact'")
    check(self.backend in BACKENDS,
          f"backend={self.backend!r}; use 'auto', 'xla' or 'cpu_kernels'")
    check(self.fsdp_min_bytes >= 0,
          f"fsdp_min_bytes={self.fsdp_min_bytes}; must be >= 0 (arrays of at most this many "
          f"bytes stay replicated)")

  @classmethod
  def from_config(cls, config: Any) -> "Experiment":
    """The typed experiment of a config (a ConfigDict, or the dict of a saved config.json):
    every key checked, the method's `method_args` and `heads` as its Args and Heads.

    Raises:
      ConfigError: one line naming an unknown key (and the closest one), a value of the
        wrong type or an impossible value.
    """
    from jax_ssl import methods  # pylint: disable=g-import-not-at-top
    from jax_ssl.errors import ConfigError  # pylint: disable=g-import-not-at-top
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if "method" not in values:
      raise ConfigError("config key 'method' is missing; set config.method in the experiment "
                        "file (e.g. 'simclr')")
    method = values["method"]
    if not isinstance(method, str) or methods.unknown_parts(method):
      unknown = methods.unknown_parts(method) if isinstance(method, str) else [method]
      raise ConfigError(f"method={method!r} is unknown ({', '.join(map(repr, unknown))} is not "
                        f"a method); choose from {sorted(methods.METHODS)}, or join several "
                        f"with '+' to mix them (e.g. 'simclr+rotation')")
    spec = methods.get_method(method)
    method_args = from_mapping(spec.args_type, values.pop("method_args", None), "method_args.")
    heads = from_mapping(spec.heads_type, values.pop("heads", None), "heads.")
    experiment = from_mapping(cls, values)
    return dataclasses.replace(experiment, method_args=method_args, heads=heads)

  def to_dict(self) -> dict[str, Any]:
    """Plain values (what DIR/config.json holds; `from_config` reads it back)."""
    return to_dict(self)

  def replace(self, **changes: Any) -> "Experiment":
    """A copy with top-level fields replaced; sections by a dict of their changed keys."""
    values = {}
    for key, change in changes.items():
      current = getattr(self, key)
      if isinstance(change, Mapping) and dataclasses.is_dataclass(current):
        change = dataclasses.replace(current, **change)
      values[key] = change
    return dataclasses.replace(self, **values)
