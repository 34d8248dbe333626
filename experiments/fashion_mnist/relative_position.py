r"""Relative patch position (context prediction) on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/relative_position.py --workdir runs/relative_position_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/relative_position.py:runlocal`.

Recipe: the centre tile and one of its 8 neighbours from a 3x3 grid of 7x7-pixel tiles
(9-pixel cells, gap 1, jitter 1), each normalised and resized to 28x28 (`tile_resize`: the
encoder learns at the resolution it is evaluated at; on raw 7x7 tiles, 3000 steps gave
knn 0.7508 / linear 0.8279 / 1% 0.7304), both through the small encoder with a 1024-d
representation (`model.final_features=1024`: a final 1x1 conv, Kolesnikov et al. 2019's
lesson that pretext tasks need a wide representation), a 2-layer classifier on the two
feature vectors; the SimCLR experiment's augmentations (one view), AdamW at 4e-3, batch 128
(2 x 128 tiles), 3000 steps.

Expected result (`results/relative_position_fmnist/results.json`, seed 0; 1% = mean of 3
subsets): knn 0.7943, linear 0.8717, 1% 0.7816 (std 0.0060); raw pixels 0.7913 / 0.8469 /
0.7780. Run history: `results/relative_position_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "relative_position"
  # each 9x9 tile resized to 28x28: the encoder's input size
  config.method_args = ml_collections.ConfigDict(dict(tile_resize=28))
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=256))
  config.model.final_features = 1024  # a 1024-d representation
  config.global_batch_size = 128
  config.total_steps = 3000
  if runlocal:
    config.total_steps = 20
    config.global_batch_size = 64
    config.model.final_features = 0
    config.method_args.tile_resize = 0
    config.heads.classifier_hidden_dim = 32
  return config
