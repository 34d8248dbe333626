"""What every Fashion-MNIST experiment shares: data, views, the small encoder, the optimizer,
the 2-core CPU budget and evaluation, as the keys that differ from the schema's defaults
(jax_ssl/config/schema.py). Each method file adds `method` and what its recipe changes in
`method_args` and `heads` (defaults: the method's Args and Heads) and the rest."""

import ml_collections


def switches(arg: str | None, *extra: str) -> frozenset[str]:
  """`get_config(arg)`'s switches: `runlocal` (a run of seconds: tiny model, few steps, a
  quick evaluation) and the file's own `extra` ones, joined by ','. Anything else is one
  line naming the accepted switches (jax_ssl.config.load.parse_switches)."""
  from jax_ssl.config.load import parse_switches  # pylint: disable=g-import-not-at-top
  return parse_switches(arg, ("runlocal", *extra))


def base_config(runlocal: bool) -> ml_collections.ConfigDict:
  """What every Fashion-MNIST file changes from the schema's defaults
  (jax_ssl/config/schema.py: ImageNet-scale values, SimCLR's ImageNet view, a ResNet-50)."""
  config = ml_collections.ConfigDict()
  # 28x28 images from Debian's IDX files; every view made on device, so the host only
  # batches, in threads of the trainer's process.
  config.dataset = ml_collections.ConfigDict(dict(
      name="fashion_mnist", source_dir="/usr/share/datasets/fashion-mnist", test_split="test",
      read_threads=4, image_size=0, host_crops=False, num_workers=0))

  # Views: SimCLR's pipeline restricted to what applies to 28x28 grayscale images (crop area
  # 0.2-1 as SimCLR's CIFAR recipe; no saturation, hue, grayscale or blur on one channel).
  config.augment = ml_collections.ConfigDict(dict(
      output_size=28, crop_scale=(0.2, 1.0), saturation=0.0, hue=0.0, grayscale_prob=0.0,
      blur_prob=0.0,
      local_crops=dict(output_size=12)))  # multi-crop (DINO, SwAV, MoCo v3): 12 px

  # A small residual CNN (CIFAR stem); a ViT (vit_tiny ...) takes 4x4 patches: 7x7 tokens.
  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet_small", width=16, stem="cifar", patch_size=4))

  # AdamW, not LARS: a short run at batch 256 on a small CNN.
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_learning_rate=4e-3, weight_decay=1e-4, warmup_steps=100))

  config.total_steps = 800  # the 2-core CPU budget
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  # RankMe and the normalised std of a training batch's features every 100 steps (one
  # forward of one batch: under 1% of a run; jax_ssl/diagnostics.py)
  config.diagnostics_every_steps = 100
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000, baselines=True,
      crop_fraction=1.0,  # the evaluation view: the whole 28x28 image
      finetune={}))

  if runlocal:
    config.total_steps = 20
    config.global_batch_size = 64
    config.log_every_steps = 5
    config.checkpoint_every_steps = 10
    config.model.width = 8
    config.optimizer.warmup_steps = 5
    # Every protocol of the file still runs, on 2000 / 1000 images; the baselines, the 3
    # low-label subsets and the report (t-SNE) took most of the smoke test's time.
    config.eval.update(train_limit=2000, test_limit=1000, baselines=False, report=False,
                       low_label_seeds=(0,))
    config.eval.finetune.update(steps=10, batch_size=64, warmup_steps=2)
  return config


def masked_modeling_config(runlocal: bool) -> ml_collections.ConfigDict:
  """`base_config` with what the masked-modeling defaults (MAE, SimMIM, MaskFeat, BEiT) share:
  the small ViT (ViT-Tiny's 4x MLP, sin-cos positions and CLS token; width 128, 6 blocks, 4
  heads, 4x4 patches: 7x7 tokens), AdamW with weight decay 0.05, and fine-tuning as the main
  protocol next to the frozen ones.

  Fine-tuning: 300 steps of batch 128 (0.64 epochs) from the pretrained encoder and, as the
  baseline to beat, from the same seed's random initialisation (`eval.baselines`); only on
  all labels (not on the 1% subsets), so both fit the 2-core budget.
  """
  config = base_config(runlocal)
  config.model.update(dict(backbone="vit_tiny", dim=128, depth=6, num_heads=4))
  config.optimizer.update(dict(base_learning_rate=1e-3, weight_decay=0.05))
  config.eval.protocols = "knn,linear,lowlabel-1%,finetune"
  config.eval.finetune.update(steps=300, batch_size=128, warmup_steps=30, low_label=False)
  if runlocal:
    config.model.update(dict(dim=32, depth=2, num_heads=2))
    config.eval.finetune.update(steps=10, batch_size=64, warmup_steps=2)
  return config
