r"""SimCLR, ResNet-18 (CIFAR stem) on CIFAR-10: solo-learn's recipe.

  python -m jax_ssl.train --config experiments/cifar10/simclr_resnet18.py --workdir runs/simclr_c10

Needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded; nothing downloads at run time).
Recipe (solo-learn scripts/pretrain/cifar/simclr.yaml): LARS, batch 256, lr 0.4, weight
decay 1e-4, temperature 0.2, projector 2048 -> 256, 1000 epochs, 10 warmup epochs, no
LARS adaptation nor decay on biases and norms. solo-learn reports 90.74% online linear
top-1 on CIFAR-10 for this recipe (not reproduced here: 1000 epochs need an accelerator).
`:runlocal` shrinks it to a few steps of a small model.
"""

import ml_collections
from ml_collections import config_dict

_TRAIN_EXAMPLES = 50_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()
  config.method = "simclr"
  config.method_args = ml_collections.ConfigDict({"temperature": 0.2})
  config.dataset = ml_collections.ConfigDict(dict(
      name="cifar10", data_dir=config_dict.placeholder(str), source_dir="",
      train_split="train", test_split="test", read_threads=8, image_size=0))
  config.augment = ml_collections.ConfigDict(dict(
      output_size=32, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
      grayscale_prob=0.2, blur_prob=0.0, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
      solarize_threshold=0.5))
  config.model = ml_collections.ConfigDict(dict(backbone="resnet18", width=64, stem="cifar"))
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_output_dim=256, projector_num_layers=2))
  config.global_batch_size = 256
  steps_per_epoch = _TRAIN_EXAMPLES // config.global_batch_size
  config.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_learning_rate=0.4, lr_scaling="linear", weight_decay=1e-4,
      momentum=0.9, warmup_steps=10 * steps_per_epoch))
  config.seed = 0
  config.total_steps = 1000 * steps_per_epoch
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5000
  config.keep_checkpoints = 2
  config.skip_nonfinite_updates = False  # True: skip NaN/Inf steps instead of stopping
  config.evaluate = True
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, knn_k=200, knn_temperature=0.07, low_label_fraction=0.01,
      low_label_seed=0, baselines=True, train_limit=0, test_limit=0))
  if runlocal:
    config.model.update(backbone="resnet_small", width=8)
    config.heads.update(projector_hidden_dim=64, projector_output_dim=32)
    config.global_batch_size = 32
    config.optimizer.warmup_steps = 2
    config.total_steps = 10
    config.log_every_steps = 5
    config.checkpoint_every_steps = 5
    config.eval.update(train_limit=512, test_limit=256)
  return config
