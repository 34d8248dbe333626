r"""Jigsaw puzzles on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/jigsaw.py --workdir runs/jigsaw_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/jigsaw.py:runlocal`.

Recipe: 3x3 tiles of 7x7 pixels (9-pixel cells, gap 1, jitter 1), 100 maximal-Hamming
permutations, every tile through the small encoder, a 2-layer classifier on the 9
concatenated tile features; the SimCLR experiment's augmentations (one view), AdamW at 4e-3,
batch 256, 1600 steps (a step costs about half of SimCLR's: 9 small tiles per image).
Measured: knn 0.7483, linear 0.8186, 1% 0.7345 (`results/jigsaw_fmnist`), below raw pixels
and the random-init encoder. Tried: tiles resized to 28x28 (`method_args.tile_resize=28`,
which lifted relative position), batch 64, 1000 steps (17.5 min on 2 cores shared with
tests): knn 0.7369, linear 0.7880, 1% 0.6921, worse, so not adopted. A 2x2 grid (24
permutations, all of them; 12-px tiles resized to 28x28), batch 128, 1200 steps (12.8 min):
0.7674 / 0.8300 / 0.7492, better on linear and 1% but still below raw pixels, and below the
random-init encoder on kNN. The same with a 512-d representation (`model.final_features=512`,
14.4 + 2.8 min): 0.7761 / 0.8668 / 0.7635, above raw pixels and its own random init (512-d:
0.7739 / 0.8495 / 0.7538) on linear only. With tiles at the batch's pixel mean and std
instead of unit (`method_args.tile_statistics=images`, 14.8 + 2.7 min): 0.7585 / 0.8540 /
0.7553, worse on all three, so the papers' unit normalisation stays. JiGen's layout
(`method_args.layout=image`: the shuffled 2x2 tiles reassembled into one 28x28 image, tiles at
the batch's pixel statistics), 512-d, batch 256, 2000 steps (13.9 + 3.1 min): 0.7943 / 0.8730
/ 0.7704, above raw pixels on kNN and linear, 0.0075 short on 1%; with 30% of the examples
left in order (`unshuffled_fraction=0.3`, 13.5 + 3.3 min): 0.7961 / 0.8674 / 0.7721.
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
       "tile_resize": 0, "tile_statistics": "unit", "layout": "tiles",
       "unshuffled_fraction": 0.0})
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=512,
                                                classifier_num_layers=2))
  config.total_steps = 1600
  if runlocal:
    config.total_steps = 20
    config.method_args.num_permutations = 10
    config.heads.classifier_hidden_dim = 32
  return config
