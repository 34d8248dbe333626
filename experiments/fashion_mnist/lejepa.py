r"""LeJEPA on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/lejepa.py --workdir runs/lejepa_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/lejepa.py:runlocal`.

Recipe: the reference minimal example's LeJEPA (4 views, lambda = 0.02, 256 SIGReg
directions, a 3-layer projector with BatchNorm down to 16 dimensions) on the SimCLR
experiment's data, augmentations and small encoder; batch 128 so that the 4 x 128 = 512
views per step cost what SimCLR's 2 x 256 do, AdamW at 4e-3 x 128/256 for 1100 steps.

Expected result (`results/lejepa_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8203, linear 0.8482, 1% 0.7928 (std 0.0020); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/lejepa_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "lejepa"
  # the reference minimal example's projector: 3 layers down to 16 dimensions
  config.heads = ml_collections.ConfigDict(dict(projector_hidden_dim=1024,
                                                projector_output_dim=16))
  config.global_batch_size = 128  # 4 views x 128 cost what SimCLR's 2 x 256 do
  config.total_steps = 1100
  if runlocal:
    config.total_steps = 20
    config.global_batch_size = 32
    config.method_args = ml_collections.ConfigDict(dict(num_slices=32))
    config.heads.projector_hidden_dim = 64
  return config
