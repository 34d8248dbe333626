r"""Rotation prediction (RotNet) on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/rotation.py --workdir runs/rotation_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/rotation.py:runlocal`.

Recipe: every image in its four rotations (4 x 128 = 512 images per step, what SimCLR's 2 x
256 views cost), a 2-layer classifier head, the SimCLR experiment's augmentations (one
view) and small encoder with its 512-d representation (`model.final_features=512`: a final
1x1 conv + BN + ReLU before pooling; RotNet itself reads features of a middle block of a
NIN, a choice left to the probes here), AdamW at 4e-3 x 128/256 for 1200 steps.

Expected result (`results/rotation_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8500, linear 0.8843, 1% 0.8044 (std 0.0094); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/rotation_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "rotation"
  config.heads = ml_collections.ConfigDict(dict(classifier_hidden_dim=256,
                                                classifier_num_layers=2))
  config.model.final_features = 512  # a 512-d representation, as the SimCLR experiment
  config.global_batch_size = 128
  config.total_steps = 1200
  if runlocal:
    config.model.final_features = 0
    config.total_steps = 20
    config.global_batch_size = 32
    config.heads.classifier_hidden_dim = 32
  return config
