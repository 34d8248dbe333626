r"""MoCo v3 on Fashion-MNIST with a small residual CNN.

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/moco_v3.py --workdir runs/moco_v3_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/moco_v3.py:runlocal`.

Recipe: the SimCLR experiment's data, augmentations, small encoder and AdamW at 4e-3, with
its multi-crop and 512-d representation: 4 local crops of 12 px (area 0.05-0.4) besides the 2
global views, queries only, each against both global views' keys (solo-learn's multi-crop
MoCo v3; the paper has 2 views), and `model.final_features=512` (a final 1x1 conv + BN + ReLU
before pooling); a 3-layer 2048 -> 256 projector and a 256 -> 2048 -> 256 predictor (the
paper's shapes, narrower), temperature 0.2, momentum encoder (backbone and projector, global
views only) with momentum 0.99 -> 1 on a cosine (the paper's ResNet value). 1000 steps.

Expected result (`results/moco_v3_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8236, linear 0.8884, 1% 0.8058 (std 0.0096); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/moco_v3_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "moco_v3"
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_num_layers=3, predictor_hidden_dim=2048))
  config.model.final_features = 512  # a 512-d representation
  config.augment.local_crops.num = 4  # solo-learn's multi-crop MoCo v3
  config.total_steps = 1000
  if runlocal:
    config.total_steps = 20
    config.model.final_features = 0
    config.augment.local_crops.num = 0
    config.heads.update(projector_hidden_dim=64, projector_output_dim=32, predictor_hidden_dim=32)
  return config
