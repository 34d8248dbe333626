"""What every ImageNet-1k experiment shares: the data (each view's crop drawn over the whole
image, decoded and resized on the host by grain worker processes; flip, colour and blur on
device), the ResNet-50, the epoch-based schedule, checkpoints and evaluation, and the
`:runlocal` shrink. Each method file passes its recipe (method, method_args, views, heads,
batch, optimizer, epochs) to `make_config`; the config holds what differs from the
schema's defaults (jax_ssl/config/schema.py: ImageNet-scale values) and the method's Args
and Heads."""

from typing import Any, Mapping

import ml_collections

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
  """`config.augment`: the schema's default view is SimCLR's ImageNet view (random resized
  crop, area 0.08-1, to 224 px, flip 0.5, colour jitter 0.8/0.8/0.8/0.2 with p = 0.8,
  grayscale 0.2, blur p = 0.5 with sigma 0.1-2, no solarisation; 96 px local crops);
  `overrides` are where a recipe's view differs (any augment key; the schema names a misspelt
  one)."""
  return dict(overrides)


def fixed_crop_scale(image_size: int, crop_size: int) -> tuple[float, float]:
  """crop_scale (with crop_ratio (1, 1)) that makes the random resized crop a plain random
  `crop_size` square of an `image_size` square image, at scale 1."""
  area = (crop_size / image_size) ** 2
  return (area, area)


def optimizer(name: str, base_learning_rate: float, *, weight_decay: float,
              **others: Any) -> dict[str, Any]:
  """`config.optimizer` without warmup_steps (make_config converts warmup epochs); `others`:
  further optimizer keys (e.g. AdamW's beta2) where they differ from the schema."""
  return dict(name=name, base_learning_rate=base_learning_rate, weight_decay=weight_decay,
              **others)


def make_config(*, runlocal: bool, method: str, augment: Mapping[str, Any],
                global_batch_size: int, optimizer: Mapping[str, Any], epochs: int,
                warmup_epochs: int, method_args: Mapping[str, Any] | None = None,
                heads: Mapping[str, Any] | None = None,
                runlocal_heads: Mapping[str, Any] | None = None,
                image_size: int | None = None, model: Mapping[str, Any] | None = None,
                runlocal_model: Mapping[str, Any] | None = None,
                host_crops: bool = True) -> ml_collections.ConfigDict:
  """The config (what differs from the schema's and the method's defaults: the schema's data
  are ImageNet's, its model the ResNet-50); `runlocal` shrinks it to a few steps of a small
  model on 56 px views (64 px evaluation images; heads updated by `runlocal_heads`), its
  input in the trainer's threads. `model` updates the ResNet-50 default (a ViT:
  `backbone="vit_base"` ...); under runlocal `runlocal_model` updates it instead of the small
  ResNet. `image_size`: the host's resize when not the schema's 256 px (IMAGE_SIZE).
  `host_crops=False`: the host resizes every image to `image_size` squared (shorter side,
  centre crop) and the views are cropped from that square on device (recipes whose crops are
  defined on it: jigsaw, relative position)."""
  config = ml_collections.ConfigDict()
  config.method = method
  config.method_args = ml_collections.ConfigDict(dict(method_args or {}))
  config.dataset = ml_collections.ConfigDict()
  if image_size is not None:
    config.dataset.image_size = image_size
  if not host_crops:
    config.dataset.host_crops = False
  config.augment = ml_collections.ConfigDict(dict(augment))
  if "local_crops" not in config.augment:
    config.augment.local_crops = ml_collections.ConfigDict()
  config.model = ml_collections.ConfigDict(dict(model or {}))
  config.heads = ml_collections.ConfigDict(dict(heads or {}))
  config.global_batch_size = global_batch_size
  steps_per_epoch = TRAIN_EXAMPLES // global_batch_size
  config.optimizer = ml_collections.ConfigDict(dict(
      optimizer, warmup_steps=warmup_epochs * steps_per_epoch))
  config.total_steps = epochs * steps_per_epoch
  if config.model.get("backbone", "resnet50").startswith("vit"):
    # MAE's ViT-B fine-tuning (He et al. 2022, Table 9: AdamW, blr 5e-4, weight decay 0.05,
    # layer decay 0.65, label smoothing 0.1, 100 epochs, 5 warmup; its mixup, cutmix,
    # RandAugment and drop path are not implemented here).
    finetune = dict(steps=100 * steps_per_epoch, batch_size=1024, base_learning_rate=5e-4,
                    warmup_steps=5 * steps_per_epoch, layer_decay=0.65,
                    crop_scale=(0.08, 1.0))
  else:
    # SimCLR's (Chen et al. 2020, App. B.5: momentum SGD, lr 0.05 x batch/256, no weight
    # decay, no warmup; 30 epochs, their 10% schedule, for every label fraction; SimCLR uses
    # Nesterov momentum, optax.sgd here is plain heavy-ball).
    finetune = dict(steps=30 * steps_per_epoch, batch_size=1024, base_learning_rate=0.05,
                    weight_decay=0.0, warmup_steps=0, label_smoothing=0.0, layer_decay=1.0,
                    optimizer="sgd", crop_scale=(0.08, 1.0))
  # The evaluation view (schema default): Resize(256) + CenterCrop(224), the central 224/256
  # of the host's 256 px squares (bicubic, as DINO's and MAE's evaluation).
  config.eval = ml_collections.ConfigDict(dict(finetune=finetune))
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
    config.heads.update(dict(runlocal_heads or {}))
    config.eval.update(train_limit=256, test_limit=128)
    config.eval.finetune.update(steps=2, batch_size=16, warmup_steps=0)
  return config
