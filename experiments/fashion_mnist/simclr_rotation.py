r"""SimCLR and rotation prediction mixed in one step on Fashion-MNIST.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simclr_rotation.py --workdir runs/simclr_rotation_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simclr_rotation.py:runlocal`.

One shared small encoder trained by two objectives at once (`method = "simclr+rotation"`):
SimCLR on two views (the main job's recipe and heads) plus rotation prediction on the
first view's four rotations, weighted 1 : 0.5. Each objective has its own heads and
arguments under `heads.<name>` / `method_args.<name>`; metrics are logged per objective
(`simclr/loss`, `rotation/rotation_accuracy`, ...). Batch 128 (2 x 128 SimCLR views + 4 x 128
rotated images per step), AdamW at 4e-3 x 128/256 for 800 steps. Not tuned.

Expected result: not measured.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "simclr+rotation"
  config.method_args = ml_collections.ConfigDict({
      "simclr": {"temperature": 0.1},
      "rotation": {"weight": 0.5}})
  config.heads = ml_collections.ConfigDict({
      "rotation": dict(classifier_hidden_dim=256, classifier_num_layers=2)})
  config.global_batch_size = 128
  if runlocal:
    config.global_batch_size = 32
    config.heads.simclr = ml_collections.ConfigDict(dict(projector_hidden_dim=64,
                                                         projector_output_dim=32))
    config.heads.rotation.classifier_hidden_dim = 32
  return config
