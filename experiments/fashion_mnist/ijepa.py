r"""I-JEPA on Fashion-MNIST with a small ViT (4x4 patches: 7x7 tokens on 28x28 images).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/ijepa.py --workdir runs/ijepa_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/ijepa.py:runlocal`.

Recipe: I-JEPA's (Assran et al. 2023; facebookresearch/ijepa configs/in1k_vith14_ep300.yaml,
experiments/imagenet/ijepa_vit_huge.py) scaled down to the 2-core budget, on the masked-
modelling defaults' small ViT (width 128, 6 blocks, 4 heads, sin-cos positions) without a
CLS token, as I-JEPA's ViT: 4 target blocks of scale 0.15-0.2 and aspect 0.75-1.5 (2x3 to
4x3 tokens on the 7x7 grid) and a square context block of scale 0.85-1 (6x6) minus the
targets, smooth-L1 against the EMA target encoder's LayerNorm'd patch tokens, a predictor 64
wide, 3 blocks, 4 heads (the reference's is 384 / 12 for a 1280-wide encoder); the
reference's view (random resized crop 0.3-1, no flip, no colour); AdamW at 1e-3 (batch 256)
with weight decay 0.04 -> 0.4 on a cosine (the reference's), 70 warmup steps (13% of the
run, the reference's 40 of 300 epochs), 550 steps (2.3 epochs).

Deviations for a 7x7 grid and a run of minutes:
 * context_fraction 0.3 (Kc = 14 of 49 tokens): the context keeps 9 to 22 tokens on this
   grid (5th to 95th percentile, median 15), so the encoder sees most of it; the ImageNet
   default 0.27 is the reference's per-batch minimum on 14x14 and 16x16 grids.
 * min_context 4 (the reference's class default; its ImageNet config's 10 is often more than
   the 6x6 context keeps beside four 4x3 targets, and the whole-block fallback then lets
   the context overlap the targets in ~20% of such a batch's images; at 4, in < 0.5%).
 * EMA momentum 0.99 -> 1 linearly (the reference's 0.996 over a run this short leaves
   e^-2 of the random initialisation in the target encoder, which is what is evaluated);
   0.99 leaves e^-5 (DINO's Fashion-MNIST file uses 0.99 for its teacher too).

Evaluated: the EMA target encoder (the paper's choice), the mean of its normalised patch
tokens, by kNN, the linear probe and 1% of the labels, against raw pixels and the random
initialisation. Not tuned.

Timing: 550 steps of 256 in 6.5 min alone on the 2-vCPU AMD EPYC (~360 images/s).

Expected result (`results/ijepa_fmnist/results.json`, seed 0, 2-vCPU AMD EPYC: 6.5 min of
training, 2.6 of evaluation): knn 0.6415, linear 0.7891, 1% 0.6998 (std 0.0054), below the
random-init encoder (0.7033 / 0.7998 / 0.6995) and raw pixels (0.7913 / 0.8469 / 0.7780):
the encoder collapses to a few directions (RankMe 2.8 of 128). Not a working recipe yet;
run history: `results/ijepa_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "ijepa"
  # block scales and aspects, smooth-L1: the method's defaults (jax_ssl/methods/ijepa.py)
  config.method_args = ml_collections.ConfigDict(dict(
      context_fraction=0.3, min_context=4, ema_start=0.99))
  config.heads = ml_collections.ConfigDict(dict(predictor_dim=64, predictor_depth=3,
                                                predictor_num_heads=4))
  config.model.update(dict(backbone="vit_tiny", dim=128, depth=6, num_heads=4,
                           cls_token=False))
  config.augment.update(dict(crop_scale=(0.3, 1.0), flip_prob=0.0, jitter_prob=0.0))
  config.optimizer.update(dict(base_learning_rate=1e-3, weight_decay=0.04,
                               weight_decay_end=0.4))
  config.optimizer.warmup_steps = 70
  config.total_steps = 550
  if runlocal:
    config.total_steps = 20
    config.optimizer.warmup_steps = 5
    config.model.update(dict(dim=32, depth=2, num_heads=2))
    config.heads.update(dict(predictor_dim=16, predictor_depth=1, predictor_num_heads=2))
  return config
