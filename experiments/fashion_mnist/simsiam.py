r"""SimSiam on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simsiam.py --workdir runs/simsiam_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simsiam.py:runlocal`.

Heads: a 2-layer 2048-2048 projector and a 2048 -> 512 -> 2048 predictor (the paper uses a
3-layer projector; its predictor bottleneck is the same).

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
  config.method = "simsiam"
  config.method_args = ml_collections.ConfigDict({})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_output_dim=2048, projector_num_layers=2,
      predictor_hidden_dim=512))
  if runlocal:
    config.heads.projector_hidden_dim = 64
    config.heads.projector_output_dim = 64
    config.heads.predictor_hidden_dim = 16
  return config
