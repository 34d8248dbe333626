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

Expected result (`results/jigsaw_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8067, linear 0.8740, 1% 0.7843 (std 0.0048); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/jigsaw_fmnist/notes.md`.
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
  # JiGen's layout: tiles normalised by the batch's pixel statistics, put back into one image,
  # 30% of the examples left in order.
  config.method_args = ml_collections.ConfigDict(dict(
      tile_statistics="images", layout="image", unshuffled_fraction=0.3))
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=512))
  config.model.final_features = 512  # a 512-d representation
  config.total_steps = 2000
  if runlocal:
    config.total_steps = 20
    config.model.final_features = 0
    config.method_args.num_permutations = 10
    config.heads.classifier_hidden_dim = 32
  return config
