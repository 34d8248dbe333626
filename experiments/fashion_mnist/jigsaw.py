r"""Jigsaw puzzles on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/jigsaw.py --workdir runs/jigsaw_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/jigsaw.py:runlocal`.

Recipe: 3x3 tiles of 7x7 pixels (9-pixel cells, gap 1, jitter 1), each normalised and
resized to 28x28 (`tile_resize`: the encoder learns at the resolution it is evaluated at;
on raw 7x7 tiles, 1600 steps at batch 256 gave knn 0.7483 / linear 0.8186 / 1% 0.7345,
below raw pixels), 100 maximal-Hamming permutations, every tile through the small encoder,
a 2-layer classifier on the 9 concatenated tile features; the SimCLR experiment's
augmentations (one view), AdamW at 4e-3 x 64/256, batch 64 (9 x 64 = 576 tiles, what
SimCLR's 2 x 256 views cost), 1000 steps.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "jigsaw"
  config.method_args = ml_collections.ConfigDict(
      {"grid": 3, "gap": 1, "jitter": 1, "num_permutations": 100, "permutation_seed": 0,
       "tile_resize": 28})
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=512,
                                                classifier_num_layers=2))
  config.global_batch_size = 64  # x 9 tiles of 28x28: what SimCLR's 2 x 256 views cost
  config.total_steps = 1000
  if runlocal:
    config.total_steps = 20
    config.method_args.tile_resize = 0
    config.method_args.num_permutations = 10
    config.heads.classifier_hidden_dim = 32
  return config
