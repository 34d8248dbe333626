r"""MAE on Fashion-MNIST with a small ViT (4x4 patches: 7x7 tokens on 28x28 images).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/mae.py --workdir runs/mae_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/mae.py:runlocal`.

Recipe: MAE's (He et al. 2022) scaled down to the 2-core budget of the SimCLR default: a
ViT-Tiny-like encoder (ViT-Tiny's 4x MLP and sin-cos positions, CLS token, but width 128,
6 blocks, 4 heads: the full ViT-Tiny, 192 x 12, is ~5x slower; results/mae_fmnist/notes.md),
75% random masking, norm_pix targets, a 2-block 128-wide decoder, one view (random resized crop 0.2-1 + flip, no colour), AdamW with MAE's
betas (0.9, 0.95) and weight decay 0.05 at lr 1e-3 (MAE's 1.5e-4 x B/256 is for 1600 epochs
at batch 4096; a short run needs more), batch 256, 800 steps (~3.4 epochs) with 100 warmup.
Evaluation features: the mean of the normalised patch tokens of the whole image; then
fine-tuning (`masked_modeling_config` in _fashion_mnist_base.py: 300 steps of batch 128,
from the pretrained encoder and from its random initialisation). Not tuned.

Expected result (`results/mae_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.7345, linear 0.8042, 1% 0.7094 (std 0.0036), fine-tuned 0.7359; raw pixels 0.7913 / 0.8469 /
0.7780. Run history: `results/mae_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.masked_modeling_config(runlocal)
  config.method = "mae"
  config.augment.jitter_prob = 0.0  # crop (area 0.2-1) + flip, no colour
  config.heads = ml_collections.ConfigDict(dict(decoder_dim=128, decoder_depth=2,
                                                decoder_num_heads=4))
  config.optimizer.beta2 = 0.95  # MAE's betas (0.9, 0.95)
  config.total_steps = 800
  if runlocal:
    config.total_steps = 20
    config.heads.update(dict(decoder_dim=32, decoder_depth=1, decoder_num_heads=2))
  return config
