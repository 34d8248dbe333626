r"""Barlow Twins on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/barlow_twins.py --workdir runs/barlow_twins_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/barlow_twins.py:runlocal`.

Heads: a 3-layer 1024-1024-1024 projector (the paper's 8192-wide one is too slow on a 2-core
CPU), off-diagonal weight lambda = 5e-3 as in the paper.

Recipe: the SimCLR experiment's data, augmentations, small encoder, AdamW at 4e-3 and 800
steps (experiments/fashion_mnist/simclr.py), with only the method and its heads changed;
none of it is tuned for this method.

Expected result (`results/barlow_twins_fmnist/results.json`, seed 0; 1% = mean of 3 subsets):
knn 0.8138, linear 0.8605, 1% 0.8007 (std 0.0028); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/barlow_twins_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "barlow_twins"
  # 1024 wide: the paper's 8192-wide projector is too slow on 2 CPU cores
  config.heads = ml_collections.ConfigDict(dict(projector_hidden_dim=1024,
                                                projector_output_dim=1024))
  if runlocal:
    config.heads.update(projector_hidden_dim=64, projector_output_dim=64)
  return config
