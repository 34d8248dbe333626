"""What every CIFAR-10 experiment shares: the data, the ResNet-18 (CIFAR stem), the epoch-based
schedule, checkpoints and evaluation, and the `:runlocal` shrink. Each method file passes its
recipe (method, method_args, views, heads, batch, optimizer, epochs) to `make_config`; the
config holds what differs from the schema's defaults (jax_ssl/config/schema.py) and the
method's Args and Heads.

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

TRAIN_EXAMPLES = 50_000


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  """`get_config(arg)`'s switches: `runlocal` (a run of seconds: tiny model, few steps, a
  quick evaluation) and the file's own `extra` ones, joined by ','. Anything else is one
  line naming the accepted switches (jax_ssl.config.load.parse_switches)."""
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def augment(**overrides: Any) -> dict[str, Any]:
  """`config.augment`: the view of solo-learn's CIFAR recipes
  (scripts/pretrain/cifar/augmentations) where it differs from the schema's SimCLR ImageNet
  view (32 px crops, colour jitter 0.4/0.4/0.2/0.1, no blur; 16 px local crops), updated by
  `overrides` (any augment key; the schema names a misspelt one)."""
  view = dict(output_size=32, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
              blur_prob=0.0, local_crops=dict(output_size=16))
  view.update(overrides)
  return view


def optimizer(name: str, base_learning_rate: float, *, weight_decay: float,
              **others: Any) -> dict[str, Any]:
  """`config.optimizer` without warmup_steps (make_config converts warmup epochs); `others`:
  further optimizer keys (e.g. LARS's trust_coefficient) where they differ from the schema."""
  return dict(name=name, base_learning_rate=base_learning_rate, weight_decay=weight_decay,
              **others)


def make_config(*, runlocal: bool, method: str, augment: Mapping[str, Any],
                global_batch_size: int, optimizer: Mapping[str, Any], epochs: int,
                warmup_epochs: int, method_args: Mapping[str, Any] | None = None,
                heads: Mapping[str, Any] | None = None,
                runlocal_heads: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The config (what differs from the schema's and the method's defaults); `runlocal`
  shrinks it to a few steps of a small model (heads updated by `runlocal_heads`)."""
  config = ml_collections.ConfigDict()
  config.method = method
  config.method_args = ml_collections.ConfigDict(dict(method_args or {}))
  # 32x32 images: views made on device; the host only batches (no worker processes)
  config.dataset = ml_collections.ConfigDict(dict(
      name="cifar10", test_split="test", read_threads=8, image_size=0, host_crops=False,
      num_workers=0))
  config.augment = ml_collections.ConfigDict(dict(augment))
  # ResNet-18 with the CIFAR stem; a ViT (vit_tiny ...) takes 4x4 patches: 8x8 tokens
  config.model = ml_collections.ConfigDict(dict(backbone="resnet18", stem="cifar",
                                                patch_size=4))
  config.heads = ml_collections.ConfigDict(dict(heads or {}))
  config.global_batch_size = global_batch_size
  steps_per_epoch = TRAIN_EXAMPLES // global_batch_size
  config.optimizer = ml_collections.ConfigDict(dict(
      optimizer, warmup_steps=warmup_epochs * steps_per_epoch))
  config.total_steps = epochs * steps_per_epoch
  config.checkpoint_every_steps = 5000
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, baselines=True,
      crop_fraction=1.0,  # the evaluation view: the whole 32x32 image
      # Fine-tuning as SimCLR (Chen et al. 2020, App. B.5: momentum SGD, lr 0.05 x batch/256,
      # no weight decay, no warmup; 30 epochs, their 10% schedule, for every label fraction;
      # SimCLR uses Nesterov momentum, optax.sgd here is plain heavy-ball).
      finetune=dict(steps=30 * steps_per_epoch, batch_size=global_batch_size,
                    base_learning_rate=0.05, weight_decay=0.0, warmup_steps=0,
                    label_smoothing=0.0, layer_decay=1.0, optimizer="sgd",
                    crop_scale=(0.08, 1.0))))
  if runlocal:
    config.model.update(backbone="resnet_small", width=8)
    config.heads.update(dict(runlocal_heads or {}))
    config.global_batch_size = 32
    config.optimizer.warmup_steps = 2
    config.total_steps = 10
    config.log_every_steps = 5
    config.checkpoint_every_steps = 5
    config.eval.update(train_limit=512, test_limit=256)
    config.eval.finetune.update(steps=4, batch_size=32)
  return config
