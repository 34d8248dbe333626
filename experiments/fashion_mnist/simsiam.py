r"""SimSiam on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simsiam.py --workdir runs/simsiam_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simsiam.py:runlocal`.

Heads: a 2-layer 2048 -> 256 projector and a 256 -> 1024 -> 256 predictor (BYOL's
experiment's sizes; the paper uses a 3-layer 2048-d projector and a 512-d predictor
bottleneck).

Recipe: the SimCLR experiment's data, augmentations, small encoder and AdamW (4e-3 per 256
images, so 2e-3 here), with the method, its heads and the batch changed: batch 128, 2000
steps (4.3 epochs).

Expected result (`results/simsiam_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8132, linear 0.8563, 1% 0.7906 (std 0.0071); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/simsiam_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "simsiam"
  config.heads = ml_collections.ConfigDict(dict(
      projector_output_dim=256, projector_num_layers=2, predictor_hidden_dim=1024))
  config.global_batch_size = 128
  config.total_steps = 2000
  if runlocal:
    config.global_batch_size = 64
    config.total_steps = 20
    config.heads.update(projector_hidden_dim=64, projector_output_dim=64,
                        predictor_hidden_dim=16)
  return config
