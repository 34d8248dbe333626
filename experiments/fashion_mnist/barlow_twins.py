r"""Barlow Twins on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/barlow_twins.py --workdir runs/barlow_twins_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/barlow_twins.py:runlocal`.

Heads: a 3-layer 1024-1024-1024 projector (the paper's 8192-wide one is too slow on a 2-core
CPU), off-diagonal weight lambda = 5e-3 as in the paper.

Recipe: the SimCLR experiment's data, augmentations, small encoder, AdamW at 4e-3 and 800
steps (experiments/fashion_mnist/simclr.py), with only the method and its heads changed;
none of it is tuned for this method and no result has been measured yet.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()

  config.method = "barlow_twins"
  config.method_args = ml_collections.ConfigDict({"off_diagonal_weight": 5e-3})

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "fashion_mnist"
  config.dataset.data_dir = config_dict.placeholder(str)      # default: $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.source_dir = "/usr/share/datasets/fashion-mnist"  # IDX files (fashion_mnist only)
  config.dataset.train_split = "train"
  config.dataset.test_split = "test"
  config.dataset.read_threads = 4
  config.dataset.image_size = 0  # 0: keep the stored size (28x28)

  # Views: SimCLR's pipeline restricted to what applies to 28x28 grayscale images.
  config.augment = ml_collections.ConfigDict(dict(
      output_size=28, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
      jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.0, hue=0.0,
      grayscale_prob=0.0, blur_prob=0.0, blur_sigma=(0.1, 2.0), solarize_prob=0.0,
      solarize_threshold=0.5))

  config.model = ml_collections.ConfigDict(dict(backbone="resnet_small", width=16, stem="cifar"))
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=1024, projector_output_dim=1024, projector_num_layers=3))

  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_learning_rate=4e-3, lr_scaling="linear", weight_decay=1e-4,
      momentum=0.9, warmup_steps=100))

  config.seed = 0
  config.global_batch_size = 256
  config.total_steps = 800
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 2

  config.skip_nonfinite_updates = False  # True: skip NaN/Inf steps instead of stopping
  config.evaluate = True
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, knn_k=200, knn_temperature=0.07, low_label_fraction=0.01,
      low_label_seed=0, baselines=True))

  if runlocal:
    config.total_steps = 20
    config.global_batch_size = 64
    config.log_every_steps = 5
    config.checkpoint_every_steps = 10
    config.model.width = 8
    config.heads.projector_hidden_dim = 64
    config.heads.projector_output_dim = 64
    config.optimizer.warmup_steps = 5
    config.eval.train_limit = 2000
    config.eval.test_limit = 1000
  else:
    config.eval.train_limit = 0  # 0: the whole split
    config.eval.test_limit = 0
  return config
