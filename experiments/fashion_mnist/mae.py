r"""MAE on Fashion-MNIST with a small ViT (4x4 patches: 7x7 tokens on 28x28 images).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/mae.py --workdir runs/mae_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/mae.py:runlocal`.

Recipe: MAE's (He et al. 2022) scaled down to the 2-core budget of the SimCLR default: a
ViT-Tiny-like encoder (ViT-Tiny's 4x MLP and sin-cos positions, CLS token, but width 128,
6 blocks, 4 heads: on the loaded machine below the full ViT-Tiny, 192 x 12, took 17.2 s per
1000 images to extract evaluation features, this one 3.3 s, the SimCLR ResNet 0.9 s),
75% random masking, norm_pix targets, a 2-block
128-wide decoder, one view (random resized crop 0.2-1 + flip, no colour), AdamW with MAE's
betas (0.9, 0.95) and weight decay 0.05 at lr 1e-3 (MAE's 1.5e-4 x B/256 is for 1600 epochs
at batch 4096; a short run needs more), batch 256, 800 steps (~3.4 epochs) with 100 warmup.
Evaluation features: the mean of the normalised patch tokens of the whole image; then
fine-tuning (`masked_modeling_config` in _fashion_mnist_base.py: 300 steps of batch 128,
from the pretrained encoder and from its random initialisation). Not tuned.

Measured (this command, seed 0; 1% = mean of 3 subsets; `results/mae_fmnist`, README
results table; rerun 2026-12-06 on a 2-vCPU AMD EPYC, its cores shared with test runs for
most of it): 10.1 min of training, 6.1 min of evaluation (the two fine-tunings included).
knn 0.7345, linear 0.8042, 1% 0.7094 (std 0.0036), fine-tuned 0.7359; the random-init ViT:
0.6966 / 0.8072 / 0.7081, fine-tuned 0.6968. The run before (11.4 + 11.7 min, no CPU
recorded): 0.7345 / 0.8037 / 0.7095, fine-tuned 0.7359. So pretraining improves fine-tuning (+3.9 points) and
kNN (+3.8), the 1% probe only within its seed spread (+0.2, std 0.4 / 1.1), and not the
full linear probe (-0.3); below raw pixels on the frozen protocols (0.7913 / 0.8475 /
0.7780), as masked modelling's features are known to be under linear probing.
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
  config.method_args = ml_collections.ConfigDict({"mask_ratio": 0.75, "norm_pix": True})
  config.augment.update(dict(crop_scale=(0.2, 1.0), flip_prob=0.5, jitter_prob=0.0))
  config.heads = ml_collections.ConfigDict(dict(decoder_dim=128, decoder_depth=2,
                                                decoder_num_heads=4))
  config.optimizer.beta2 = 0.95  # MAE's betas (0.9, 0.95)
  config.total_steps = 800
  if runlocal:
    config.total_steps = 20
    config.heads.update(dict(decoder_dim=32, decoder_depth=1, decoder_num_heads=2))
  return config
