"""What every ImageNet-1k experiment shares: the data (each view's crop drawn over the whole
image, decoded and resized on the host by grain worker processes; flip, colour and blur on
device), the ResNet-50, the epoch-based schedule, checkpoints and evaluation, and the
`:runlocal` shrink. Each method file passes its recipe (method, method_args, views, heads,
batch, optimizer, epochs) to `make_config`."""

from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

TRAIN_EXAMPLES = 1_281_167
# The evaluation's host resize (shorter side, then the central square; eval.crop_fraction of
# it is the view), and with dataset.host_crops=False the training images' too.
IMAGE_SIZE = 256
RUNLOCAL_IMAGE_SIZE = 64
RUNLOCAL_OUTPUT_SIZE = 56


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  """`get_config(arg)`'s switches: `runlocal` (a run of seconds: tiny model, few steps, a
  quick evaluation) and the file's own `extra` ones, joined by ','. Anything else is one
  line naming the accepted switches (jax_ssl.config.load.parse_switches)."""
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def augment(**overrides: Any) -> dict[str, Any]:
  """Every `config.augment` key, updated by `overrides`: SimCLR's ImageNet view (random
  resized crop, area 0.08-1, to 224 px, flip 0.5, colour jitter 0.8/0.8/0.8/0.2 with
  p = 0.8, grayscale 0.2, blur p = 0.5 with sigma 0.1-2, no solarisation)."""
  view = dict(
      output_size=224, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
      grayscale_prob=0.2, blur_prob=0.5, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
      solarize_threshold=0.5,
      view_overrides=(),  # per global view: dicts of the keys above (asymmetric views)
      # multi-crop (DINO, SwAV): `num` local crops of `output_size` px after the global views
      local_crops=dict(num=0, output_size=96, crop_scale=(0.05, 0.4), overrides={}))
  unknown = set(overrides) - set(view)
  if unknown:
    raise KeyError(f"unknown augment keys {sorted(unknown)}")
  view.update(overrides)
  return view


def fixed_crop_scale(image_size: int, crop_size: int) -> tuple[float, float]:
  """crop_scale (with crop_ratio (1, 1)) that makes the random resized crop a plain random
  `crop_size` square of an `image_size` square image, at scale 1."""
  area = (crop_size / image_size) ** 2
  return (area, area)


def optimizer(name: str, base_learning_rate: float, *, weight_decay: float,
              lr_scaling: str = "linear", momentum: float = 0.9,
              trust_coefficient: float = 0.001, beta2: float = 0.999) -> dict[str, Any]:
  """`config.optimizer` without warmup_steps (make_config converts warmup epochs); momentum
  is AdamW's beta1, trust_coefficient LARS only, beta2 AdamW only."""
  return dict(name=name, base_learning_rate=base_learning_rate, lr_scaling=lr_scaling,
              weight_decay=weight_decay, momentum=momentum,
              trust_coefficient=trust_coefficient, beta2=beta2)


def make_config(*, runlocal: bool, method: str, method_args: Mapping[str, Any],
                augment: Mapping[str, Any], heads: Mapping[str, Any],
                global_batch_size: int, optimizer: Mapping[str, Any], epochs: int,
                warmup_epochs: int, runlocal_heads: Mapping[str, Any],
                image_size: int = IMAGE_SIZE, model: Mapping[str, Any] | None = None,
                runlocal_model: Mapping[str, Any] | None = None,
                host_crops: bool = True) -> ml_collections.ConfigDict:
  """The full config; `runlocal` shrinks it to a few steps of a small model on 56 px views
  (64 px evaluation images; heads updated by `runlocal_heads`), its input in the trainer's
  threads. `model` updates the ResNet-50 default (a ViT: `backbone="vit_base"` ...); under
  runlocal `runlocal_model` updates it instead of the small ResNet. `host_crops=False`: the
  host resizes every image to `image_size` squared (shorter side, centre crop) and the views
  are cropped from that square on device (recipes whose crops are defined on it: jigsaw,
  relative position)."""
  config = ml_collections.ConfigDict()
  config.method = method
  config.method_args = ml_collections.ConfigDict(dict(method_args))
  config.dataset = ml_collections.ConfigDict(dict(
      name="imagenet2012", data_dir=config_dict.placeholder(str), source_dir="",
      train_split="train", test_split="validation", image_size=image_size,
      # Each view's random resized crop over the whole image, decoded at the smallest DCT
      # scale that suffices and resized on the host (jax_ssl/data/host_views.py); False: the
      # image_size square of every image, cropped on device.
      host_crops=host_crops,
      # grain worker processes making the batches (-1: one per core but the trainer's, at
      # most 32; 0: threads of the trainer's process), each with read_threads threads and
      # worker_buffer_size finished batches ready.
      num_workers=-1, read_threads=2, worker_buffer_size=2))
  config.augment = ml_collections.ConfigDict(dict(augment))
  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet50", width=64, stem="imagenet", final_features=0,
      # ViT backbones (vit_tiny ... vit_huge) only: 14x14 tokens of 16x16 px on 224 px views
      patch_size=16, pos_embedding="sincos", cls_token=True, pool="gap", dtype="float32",
      remat=False, depth=None, dim=None, num_heads=None))
  config.model.update(dict(model or {}))
  config.heads = ml_collections.ConfigDict(dict(heads))
  config.global_batch_size = global_batch_size
  config.grad_accum_steps = 1  # > 1: average the gradients of this many micro-batches
  # "micro_batch": each micro-batch's loss alone (fewer negatives, noisier batch statistics);
  # "exact": the whole batch's loss (GradCache), for simclr, moco_v3, barlow_twins, vicreg
  config.grad_accum_mode = "micro_batch"
  steps_per_epoch = TRAIN_EXAMPLES // global_batch_size
  opt = dict(optimizer)
  config.optimizer = ml_collections.ConfigDict(dict(
      name=opt.pop("name"), base_learning_rate=opt.pop("base_learning_rate"),
      lr_scaling=opt.pop("lr_scaling"), weight_decay=opt.pop("weight_decay"),
      momentum=opt.pop("momentum"), warmup_steps=warmup_epochs * steps_per_epoch,
      trust_coefficient=opt.pop("trust_coefficient"), beta2=opt.pop("beta2")))
  if opt:
    raise KeyError(f"unknown optimizer keys {sorted(opt)}")
  config.seed = 0
  config.total_steps = epochs * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 2
  config.skip_nonfinite_updates = False  # True: skip NaN/Inf steps instead of stopping
  config.evaluate = True
  config.online_probe = False  # True: linear probe on the first view's features, logged
  # "replicated": the whole train state on every device; "fsdp": parameters, optimizer state
  # and EMA targets split over the devices (arrays above fsdp_min_bytes), for models whose
  # state does not fit on one chip (jax_ssl/sharding.py). mesh_shape (data, fsdp), fsdp
  # only: the batch over both axes, the state over `fsdp`; () one `data` axis.
  config.sharding = "replicated"
  config.mesh_shape = ()
  config.fsdp_min_bytes = 64 * 2**10  # smaller arrays (biases, norms) stay replicated
  if config.model.backbone.startswith("vit"):
    # MAE's ViT-B fine-tuning (He et al. 2022, Table 9: AdamW, blr 5e-4, weight decay 0.05,
    # layer decay 0.65, label smoothing 0.1, 100 epochs, 5 warmup; its mixup, cutmix,
    # RandAugment and drop path are not implemented here).
    finetune = dict(steps=100 * steps_per_epoch, batch_size=1024, base_learning_rate=5e-4,
                    weight_decay=0.05, warmup_steps=5 * steps_per_epoch, label_smoothing=0.1,
                    layer_decay=0.65, optimizer="adamw", crop_scale=(0.08, 1.0), low_label=True)
  else:
    # SimCLR's (Chen et al. 2020, App. B.5: momentum SGD, lr 0.05 x batch/256, no weight
    # decay, no warmup; 30 epochs, their 10% schedule, for every label fraction; SimCLR uses
    # Nesterov momentum, optax.sgd here is plain heavy-ball).
    finetune = dict(steps=30 * steps_per_epoch, batch_size=1024, base_learning_rate=0.05,
                    weight_decay=0.0, warmup_steps=0, label_smoothing=0.0, layer_decay=1.0,
                    optimizer="sgd", crop_scale=(0.08, 1.0), low_label=True)
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1024, knn_k=200, knn_temperature=0.07, baselines=False,
      train_limit=0, test_limit=0, protocols="knn,linear,lowlabel-1%",
      knn_k_sweep=(10, 20, 100, 200), low_label_seeds=(0, 1, 2), report=True,
      encoder="method",  # as the method's paper evaluates (DINO: the EMA teacher)
      # Resize(256) + CenterCrop(224): the central 224/256 of the host's 256 px squares
      # (bicubic, as DINO's and MAE's evaluation; torchvision's offsets, data/host_views.py).
      crop_fraction=0.875,
      finetune=finetune))
  if runlocal:
    config.global_batch_size = 16
    config.total_steps = 4
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    config.optimizer.warmup_steps = 1
    config.dataset.image_size = RUNLOCAL_IMAGE_SIZE
    config.dataset.update(num_workers=0, read_threads=4)  # no worker start-up for 4 steps
    config.augment.output_size = RUNLOCAL_OUTPUT_SIZE
    config.augment.local_crops.output_size = RUNLOCAL_OUTPUT_SIZE * 96 // 224
    config.model.update(dict(runlocal_model or dict(backbone="resnet_small", width=8)))
    config.heads.update(dict(runlocal_heads))
    config.eval.update(train_limit=256, test_limit=128)
    config.eval.finetune.update(steps=2, batch_size=16, warmup_steps=0)
  return config
