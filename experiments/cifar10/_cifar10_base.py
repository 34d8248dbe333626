"""What every CIFAR-10 experiment shares: the data, the ResNet-18 (CIFAR stem), the epoch-based
schedule, checkpoints and evaluation, and the `:runlocal` shrink. Each method file passes its
recipe (method, method_args, views, heads, batch, optimizer, epochs) to `make_config`.

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

Where every recipe here (solo-learn's scripts/pretrain/cifar) differs from solo-learn:
 * with LARS, `clip_lr: True` (each layer's adapted lr capped at the global lr) is not applied:
   optax's LARS has no clipping.
 * Warmup starts from lr 0, not solo-learn's `warmup_start_lr` 3e-5; decay ends at 0.
 * No per-channel mean/std normalisation of the inputs (solo-learn normalises with CIFAR-10
   statistics); crops are resampled bilinearly, not bicubically.
 * solo-learn trains in 16-bit mixed precision with its online linear classifier alongside.
"""

from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

TRAIN_EXAMPLES = 50_000


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  """`get_config(arg)`'s switches: `runlocal` (a run of seconds: tiny model, few steps, a
  quick evaluation) and the file's own `extra` ones, joined by ','. Anything else is one
  line naming the accepted switches (jax_ssl.config.load.parse_switches)."""
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def augment(**overrides: Any) -> dict[str, Any]:
  """Every `config.augment` key, updated by `overrides`: random resized crop (area 0.08-1) to
  32 px, flip 0.5, colour jitter 0.4/0.4/0.2/0.1 with p = 0.8, grayscale 0.2, no blur, no
  solarisation (the view of solo-learn's CIFAR recipes, scripts/pretrain/cifar/augmentations)."""
  view = dict(
      output_size=32, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
      grayscale_prob=0.2, blur_prob=0.0, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
      solarize_threshold=0.5,
      view_overrides=(),  # per global view: dicts of the keys above (asymmetric views)
      # multi-crop (DINO, SwAV): `num` local crops of `output_size` px after the global views
      local_crops=dict(num=0, output_size=16, crop_scale=(0.05, 0.4), overrides={}))
  unknown = set(overrides) - set(view)
  if unknown:
    raise KeyError(f"unknown augment keys {sorted(unknown)}")
  view.update(overrides)
  return view


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
                warmup_epochs: int, runlocal_heads: Mapping[str, Any]
                ) -> ml_collections.ConfigDict:
  """The full config; `runlocal` shrinks it to a few steps of a small model (heads updated
  by `runlocal_heads`)."""
  config = ml_collections.ConfigDict()
  config.method = method
  config.method_args = ml_collections.ConfigDict(dict(method_args))
  config.dataset = ml_collections.ConfigDict(dict(
      name="cifar10", data_dir=config_dict.placeholder(str), source_dir="",
      train_split="train", test_split="test", read_threads=8, image_size=0,
      # 32x32 images: views made on device; the host only batches (no worker processes)
      host_crops=False, num_workers=0, worker_buffer_size=2))
  config.augment = ml_collections.ConfigDict(dict(augment))
  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet18", width=64, stem="cifar", final_features=0,
      # ViT backbones (vit_tiny ... vit_huge) only: 8x8 tokens of 4x4 px on 32x32 images
      patch_size=4, pos_embedding="sincos", cls_token=True, pool="gap", dtype="float32",
      remat=False, depth=None, dim=None, num_heads=None))
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
  config.checkpoint_every_steps = 5000
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
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, knn_k=200, knn_temperature=0.07, baselines=True,
      train_limit=0, test_limit=0, protocols="knn,linear,lowlabel-1%",
      knn_k_sweep=(10, 20, 100, 200), low_label_seeds=(0, 1, 2), report=True,
      encoder="method",  # as the method's paper evaluates (DINO: the EMA teacher)
      crop_fraction=1.0,  # the evaluation view: the whole 32x32 image
      # Fine-tuning as SimCLR (Chen et al. 2020, App. B.5: momentum SGD, lr 0.05 x batch/256,
      # no weight decay, no warmup; 30 epochs, their 10% schedule, for every label fraction;
      # SimCLR uses Nesterov momentum, optax.sgd here is plain heavy-ball).
      finetune=dict(steps=30 * steps_per_epoch, batch_size=global_batch_size,
                    base_learning_rate=0.05, weight_decay=0.0, warmup_steps=0,
                    label_smoothing=0.0, layer_decay=1.0, optimizer="sgd",
                    crop_scale=(0.08, 1.0), low_label=True)))
  if runlocal:
    config.model.update(backbone="resnet_small", width=8)
    config.heads.update(dict(runlocal_heads))
    config.global_batch_size = 32
    config.optimizer.warmup_steps = 2
    config.total_steps = 10
    config.log_every_steps = 5
    config.checkpoint_every_steps = 5
    config.eval.update(train_limit=512, test_limit=256)
    config.eval.finetune.update(steps=4, batch_size=32)
  return config
