r"""SimSiam on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simsiam.py --workdir runs/simsiam_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simsiam.py:runlocal`.

Heads: a 2-layer 2048 -> 256 projector and a 256 -> 1024 -> 256 predictor (BYOL's
experiment's sizes; the paper uses a 3-layer 2048-d projector and a 512-d predictor
bottleneck).

Recipe: the SimCLR experiment's data, augmentations, small encoder and AdamW (4e-3 per 256
images, so 2e-3 here), with the method, its heads and the batch changed: batch 128, 2000
steps (4.3 epochs). Measured (seed 0, 1% = mean of 3 subsets; `results/simsiam_fmnist`,
README results table), on a 2-vCPU AMD EPYC sharing its cores with test runs (9.7 min of
training, 2.7 of evaluation): knn 0.8132, linear 0.8563, 1% 0.7906 (std 0.0071), above raw
pixels (0.7913 / 0.8469 / 0.7780) and the random-init encoder (0.7683 / 0.8222 / 0.7303)
on all three. An earlier run of the same recipe (11.9 min at 0.36 s/step, before the CPU
speed paths): 0.8064 / 0.8600 / 0.7975.
Earlier recipes at batch 256, each below raw pixels on all three:
  * 2048 -> 2048 projector, 512-d predictor bottleneck, 800 steps: 0.7778 / 0.8372 / 0.7652;
  * the heads above, 1050 steps (11.5 min): 0.7870 / 0.8424 / 0.7723.
Twice the updates at half the batch, for the same images, made the difference.
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
  config.method_args = ml_collections.ConfigDict({})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_output_dim=256, projector_num_layers=2,
      predictor_hidden_dim=1024))
  config.global_batch_size = 128
  config.total_steps = 2000
  if runlocal:
    config.global_batch_size = 64
    config.total_steps = 20
    config.heads.projector_hidden_dim = 64
    config.heads.projector_output_dim = 64
    config.heads.predictor_hidden_dim = 16
  return config
