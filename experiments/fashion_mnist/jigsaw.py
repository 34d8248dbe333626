r"""Jigsaw puzzles on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/jigsaw.py --workdir runs/jigsaw_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/jigsaw.py:runlocal`.

Recipe (JiGen's layout, Carlucci et al. 2019): a 3x3 grid of 7x7-pixel tiles (9-pixel cells,
gap 1, jitter 1), each normalised to the batch's pixel mean and std
(`tile_statistics=images`), shuffled by one of 100 maximal-Hamming permutations and put back
together into one 28x28 image (`layout=image`: each tile resized to its cell), 30% of the
examples left in order (`unshuffled_fraction=0.3`, the identity permutation's class); the
small encoder with a 512-d representation (`model.final_features=512`) sees the scrambled
image and a 2-layer classifier on its features predicts the permutation; the SimCLR
experiment's augmentations (one view), AdamW at 4e-3, batch 256, 2000 steps (one 28x28
image per example: about half of SimCLR's step).

Measured (seed 0, 1% = mean of 3 subsets; rerun 2026-12-06 alone on a 2-vCPU AMD EPYC with
the library's CPU speed paths, 5.0 min of training and 1.5 min of evaluation;
`results/jigsaw_fmnist`): knn 0.8067, linear 0.8740, 1% 0.7843 ± 0.0048, above raw pixels
(0.7913 / 0.8469 / 0.7780) and its own random-init encoder (512-d: 0.7739 / 0.8497 / 0.7538)
on all three, on 1% by less than the subsets' std. The same recipe before (15.3 + 3.9 min
alone on a 2-vCPU Xeon, before the CPU kernels): 0.8108 / 0.8726 / 0.7818.
Earlier recipes, measured on the Xeon:
- Noroozi & Favaro's layout (every tile through the encoder, a classifier on the 9
  concatenated tile features), 3x3 tiles of 7x7 pixels, unit tile statistics, 128-d, batch
  256, 1600 steps (11.5 min): 0.7483 / 0.8186 / 0.7345, below raw pixels and the random-init
  encoder; tiles resized to 28x28 (`tile_resize=28`), batch 64, 1000 steps (17.5 min, 2
  cores shared with tests): 0.7369 / 0.7880 / 0.6921;
- that layout on a 2x2 grid (all 24 permutations; 12-px tiles resized to 28x28), batch 128,
  1200 steps (12.8 min): 0.7674 / 0.8300 / 0.7492; with a 512-d representation (14.4 + 2.8
  min): 0.7761 / 0.8668 / 0.7635; and with tiles at the batch's pixel statistics (14.8 + 2.7
  min): 0.7585 / 0.8540 / 0.7553;
- JiGen's layout on the 2x2 grid, 512-d, batch 256, 2000 steps (13.9 + 3.1 min): 0.7943 /
  0.8730 / 0.7704; with 30% left in order (13.5 + 3.3 min): 0.7961 / 0.8674 / 0.7721, both
  short of raw pixels on 1%.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "jigsaw"
  config.method_args = ml_collections.ConfigDict(
      {"grid": 3, "gap": 1, "jitter": 1, "num_permutations": 100, "permutation_seed": 0,
       "tile_resize": 0, "tile_statistics": "images", "layout": "image",
       "unshuffled_fraction": 0.3})
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=512,
                                                classifier_num_layers=2))
  config.model.final_features = 512
  config.total_steps = 2000
  if runlocal:
    config.total_steps = 20
    config.model.final_features = 0
    config.method_args.num_permutations = 10
    config.heads.classifier_hidden_dim = 32
  return config
