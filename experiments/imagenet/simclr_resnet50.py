r"""SimCLR, ResNet-50 on ImageNet-1k: the paper's recipe.

  python -m jax_ssl.train --config experiments/imagenet/simclr_resnet50.py --workdir gs://.../simclr_in1k

Needs `imagenet2012` prepared as array_record in the TFDS data dir. Images are resized on the
host to `dataset.image_size` squared, then cropped on device (random resized crop to 224).
Recipe (Chen et al. 2020, Appendix B.9): LARS, batch 4096, lr 0.3 x B/256 = 4.8, weight
decay 1e-6, temperature 0.1, 2-layer projector 2048 -> 128, 1000 epochs with 10 warmup
epochs, colour jitter strength 1.0, blur p=0.5. Paper: 69.3% linear top-1 (Table 6).
"""

import ml_collections
from ml_collections import config_dict

_TRAIN_EXAMPLES = 1_281_167


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()
  config.method = "simclr"
  config.method_args = ml_collections.ConfigDict({"temperature": 0.1})
  config.dataset = ml_collections.ConfigDict(dict(
      name="imagenet2012", data_dir=config_dict.placeholder(str), source_dir="",
      train_split="train", test_split="validation", read_threads=32, image_size=256))
  config.augment = ml_collections.ConfigDict(dict(
      output_size=224, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
      grayscale_prob=0.2, blur_prob=0.5, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
      solarize_threshold=0.5))
  config.model = ml_collections.ConfigDict(dict(backbone="resnet50", width=64, stem="imagenet"))
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_output_dim=128, projector_num_layers=2))
  config.global_batch_size = 4096
  steps_per_epoch = _TRAIN_EXAMPLES // config.global_batch_size
  config.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_learning_rate=0.3, lr_scaling="linear", weight_decay=1e-6,
      momentum=0.9, warmup_steps=10 * steps_per_epoch))
  config.seed = 0
  config.total_steps = 1000 * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 2
  config.skip_nonfinite_updates = False  # True: skip NaN/Inf steps instead of stopping
  config.evaluate = True
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1024, knn_k=200, knn_temperature=0.07, low_label_fraction=0.01,
      low_label_seed=0, baselines=False, train_limit=0, test_limit=0))
  if runlocal:
    config.global_batch_size = 16
    config.total_steps = 4
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    config.optimizer.warmup_steps = 1
    config.dataset.image_size = 64
    config.augment.output_size = 56
    config.model.update(backbone="resnet_small", width=8)
    config.heads.update(projector_hidden_dim=64, projector_output_dim=32)
    config.eval.update(train_limit=256, test_limit=128)
  return config
