r"""NNCLR on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/nnclr.py --workdir runs/nnclr_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/nnclr.py:runlocal`.

Recipe: the SimCLR experiment's data, augmentations, small encoder and AdamW at 4e-3, a
3-layer 2048 -> 256 projector and a 256 -> 2048 -> 256 predictor (the paper's shapes,
narrower), temperature 0.1, a support set of 8192 projections (~14% of the 60k training
images; the paper's 98304 is for ImageNet), 800 steps. Not tuned.

Expected result (`results/nnclr_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8204, linear 0.8582, 1% 0.8019 (std 0.0065); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/nnclr_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "nnclr"
  config.method_args = ml_collections.ConfigDict(dict(queue_size=8192))  # ~14% of the images
  config.heads = ml_collections.ConfigDict(dict(predictor_hidden_dim=2048))
  if runlocal:
    config.method_args.queue_size = 256
    config.heads.update(projector_hidden_dim=64, projector_output_dim=32, predictor_hidden_dim=32)
  return config
