r"""data2vec 2.0, ViT-S with 4x4 patches on CIFAR-10 (8x8 tokens on 32 px images).

  python -m jax_ssl.train --config experiments/cifar10/data2vec2_vit_small.py --workdir runs/d2v2_cifar10

Data and `:runlocal`: as experiments/cifar10/_cifar10_base.py (the runlocal model is a
2-block, 32-wide ViT).

Recipe: the reference has no CIFAR-10 recipe (solo-learn, this directory's source, has no
data2vec); this is its ViT-B ImageNet recipe (fairseq
examples/data2vec/config/v2/base_images_only_task.yaml, experiments/imagenet/
data2vec2_vit_base.py) on a ViT-S (384 wide, 12 blocks, 6 heads; CLS token, sin-cos
positions) with 4 px patches: targets the top 10 of 12 blocks' FFN outputs (instance norm,
LayerNorm), inverse block masking of 80% with 3x3 kept blocks and mask_prob_adjust 0.07
(12 of 64 patches kept), the squared error x 1/sqrt(384) plus the CLS term (weight 2.56,
the method's default), EMA 0.9998 -> 0.99999 over the first 100/375.3 of the run, Adam
betas (0.9, 0.95), weight decay 0.05, lr 1e-3 at batch 256 with 10 warmup epochs then
cosine, the MAE view (random resized crop 0.2-1 + flip, no colour). Scaled for the smaller
model and grid: 8 masks per image (the reference: 16) and the decoder 384 wide with 4
layers of kernel 3 in 16 groups (the reference's ViT-B: 768 / 6); 200 epochs. Not tuned.

Expected result: not measured (no run on this machine's budget); no reference number
exists for this setting.

Where this config cannot express the recipe exactly: as data2vec2_vit_base.py (pre-norm
blocks, no gradient clipping, no input normalisation, bilinear crops); evaluation uses this
directory's SimCLR-style fine-tuning (momentum SGD), not a ViT fine-tuning recipe.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="data2vec2",
      method_args=dict(num_masks=8, ema_anneal_fraction=100_000 / 375_300),
      augment=base.augment(crop_scale=(0.2, 1.0), jitter_prob=0.0, grayscale_prob=0.0),
      global_batch_size=256,
      optimizer=base.optimizer("adamw", 1e-3, weight_decay=0.05, beta2=0.95),
      epochs=200, warmup_epochs=10,
      heads=dict(decoder_dim=384, decoder_kernel=3, decoder_layers=4, decoder_groups=16),
      runlocal_heads=dict(decoder_dim=32, decoder_layers=1, decoder_groups=8))
  config.model.update(dict(backbone="vit_small", patch_size=4))
  if runlocal:
    config.model.update(dict(backbone="vit_tiny", depth=2, dim=32, num_heads=2))
    config.method_args.update(dict(num_masks=2, top_k_layers=2))
  return config
