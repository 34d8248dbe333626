r"""Barlow Twins on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/barlow_twins.py --workdir runs/barlow_twins_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/barlow_twins.py:runlocal`.

Heads: a 3-layer 1024-1024-1024 projector (the paper's 8192-wide one is too slow on a 2-core
CPU), off-diagonal weight lambda = 5e-3 as in the paper.

Recipe: the SimCLR experiment's data, augmentations, small encoder, AdamW at 4e-3 and 800
steps (experiments/fashion_mnist/simclr.py), with only the method and its heads changed;
none of it is tuned for this method and no result has been measured yet.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = arg == "runlocal"
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "barlow_twins"
  config.method_args = ml_collections.ConfigDict({"off_diagonal_weight": 5e-3})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=1024, projector_output_dim=1024, projector_num_layers=3))
  if runlocal:
    config.heads.projector_hidden_dim = 64
    config.heads.projector_output_dim = 64
  return config
