"""What every Moving Fashion-MNIST experiment shares: the offline video dataset, clip sampling,
clip views, the small 3-D CNN, the optimizer, the 2-core CPU budget and evaluation, as the
keys that differ from the schema's defaults (jax_ssl/config/schema.py). Each method file adds
`method` and what its recipe changes.

Moving Fashion-MNIST (jax_ssl/data/moving_fashion_mnist): 20-frame 64x64 clips of a
Fashion-MNIST garment moving and bouncing, built offline from Debian's dataset-fashion-mnist
on first use; labels "label" (the garment's class) and "motion" (direction x speed class).
"""

import ml_collections


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  """`get_config(arg)`'s switches: `runlocal` (a run of seconds: tiny model, few steps, a
  quick evaluation) and the file's own `extra` ones, joined by ','."""
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def base_config(runlocal: bool) -> ml_collections.ConfigDict:
  """What every Moving Fashion-MNIST file changes from the schema's defaults."""
  config = ml_collections.ConfigDict()
  config.dataset = ml_collections.ConfigDict(dict(
      name="moving_fashion_mnist", source_dir="/usr/share/datasets/fashion-mnist",
      test_split="test", read_threads=4, image_size=0, host_crops=False, num_workers=0))
  # 8 frames at stride 2 of the 20: a clip spans 15 frames, so two clips of one video
  # overlap partly (clips.starts="uniform": each start drawn independently).
  config.clips = ml_collections.ConfigDict(dict(num_frames=8, stride=2))
  # One crop, flip and brightness/contrast jitter per clip, shared by its frames (no
  # saturation, hue, grayscale or blur on one channel); 48 px views of the 64 px frames.
  config.augment = ml_collections.ConfigDict(dict(
      output_size=48, crop_scale=(0.3, 1.0), saturation=0.0, hue=0.0, grayscale_prob=0.0,
      blur_prob=0.0))
  config.model = ml_collections.ConfigDict(dict(backbone="video_cnn_small", width=16))
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_learning_rate=2e-3, weight_decay=1e-4, warmup_steps=50))
  config.global_batch_size = 64
  config.total_steps = 600  # the 2-core CPU budget
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.diagnostics_every_steps = 100
  # Both label kinds, each with every protocol (results "knn_top1"... for the garment,
  # "motion/knn_top1"... for the motion class), and clip retrieval (RSPNet's Recall@k).
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=256, baselines=True, crop_fraction=1.0, label_keys=("label", "motion"),
      protocols="knn,linear,lowlabel-1%,retrieval"))
  if runlocal:
    config.total_steps = 6
    config.global_batch_size = 16
    config.log_every_steps = 2
    config.checkpoint_every_steps = 3
    config.diagnostics_every_steps = 0
    config.clips.num_frames = 4
    config.augment.output_size = 32
    config.model.width = 8
    config.optimizer.warmup_steps = 2
    config.eval.update(train_limit=256, test_limit=128, baselines=False, report=False,
                       low_label_seeds=(0,))
  return config


def masked_modeling_config(runlocal: bool) -> ml_collections.ConfigDict:
  """`base_config` with a small video ViT (width 128, 4 blocks, 4 heads; 2 x 8 x 8 tubelets:
  8 frames of 48 px are 4 x 6 x 6 = 144 tokens) and AdamW with weight decay 0.05, as the
  image masked-modelling defaults (experiments/fashion_mnist/_fashion_mnist_base.py)."""
  config = base_config(runlocal)
  config.model.update(dict(backbone="vit_tiny", dim=128, depth=4, num_heads=4, patch_size=8,
                           tubelet_size=2))
  config.optimizer.update(dict(base_learning_rate=1e-3, weight_decay=0.05))
  if runlocal:
    config.model.update(dict(dim=32, depth=1, num_heads=2))
  return config
