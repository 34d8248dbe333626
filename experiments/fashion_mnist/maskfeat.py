r"""MaskFeat on Fashion-MNIST with a small ViT (4x4 patches: 7x7 tokens on 28x28 images).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/maskfeat.py --workdir runs/maskfeat_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/maskfeat.py:runlocal`.

Recipe: MaskFeat's (Wei et al. 2022) image setting scaled down to the 2-core budget, on the
encoder of experiments/fashion_mnist/simmim.py (ViT-Tiny-like: width 128, 6 blocks, 4 heads,
CLS token, sin-cos positions): blockwise masking of 40% of the 49 patches (20) in blocks of
at least 4 patches, masked patch embeddings replaced by a learned mask token, a linear head
predicting each masked patch's HOG target (9 orientation bins in 2x2 px cells, 2x2 cells per
4x4 patch, each cell's histogram L2-normalised as the official code's HOGLayerC: the paper's
8x8 cells in 16x16 patches scaled by the patch size; jax_ssl/hog.py), mean squared error; one view (random resized crop 0.5-1 +
flip, the paper's, no colour); AdamW (0.9, 0.999), weight decay 0.05, lr 1e-3 (the paper's
2e-4 x B/256 is for 1600 epochs), batch 256, 600 steps (the encoder costs what SimMIM's
does; the HOG targets are computed on device in the step). Not implemented: the paper's
gradient clipping at norm 0.02. Evaluation: the frozen protocols, then fine-tuning
(`masked_modeling_config` in _fashion_mnist_base.py: 300 steps of batch 128, from the
pretrained encoder and from its random initialisation). Not tuned.

Expected result (`results/maskfeat_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.7527, linear 0.8229, 1% 0.7368 (std 0.0072), fine-tuned 0.7469; raw pixels 0.7913 / 0.8469 /
0.7780. Run history: `results/maskfeat_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.masked_modeling_config(runlocal)
  config.method = "maskfeat"
  config.method_args = ml_collections.ConfigDict(dict(
      min_block_patches=4,  # the paper's 16 of 196 patches, scaled to 49
      cell_size=2))  # 2x2 HOG cells per 4x4 patch (the paper's 8x8 in 16x16)
  config.augment.update(crop_scale=(0.5, 1.0), jitter_prob=0.0)  # crop + flip, no colour
  config.total_steps = 600
  if runlocal:
    config.total_steps = 20
  return config
