r"""SimCLR on Fashion-MNIST with a small residual CNN: the embedded default (main job).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simclr.py --workdir runs/simclr_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simclr.py:runlocal` (2 views
and the plain encoder: the smoke test and the test suite's tiny configs).

Recipe: SimCLR's augmentations minus colour (grayscale images) with jitter strength 0.8,
crops of 20-100% of the area, plus multi-crop (Caron et al. 2020, as solo-learn's SimCLR):
4 local crops of 12x12 from 5-40% of the area, every crop of an image a positive of the
others (`losses.nt_xent_multi_view`); temperature 0.1, a 2048-wide projector, a 512-d
representation (`model.final_features=512`: a final 1x1 conv + BN + ReLU before pooling),
AdamW at 4e-3, batch 256, 1600 steps (2400 gave 0.8440 / 0.9037 / 0.8287 at 1.5x the cost;
the 2-core budget: 15 minutes with evaluation).

Expected result (`results/simclr_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8415, linear 0.9015, 1% 0.8235 (std 0.0072); raw pixels 0.7913 / 0.8472 / 0.7780. Run
history: `results/simclr_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "simclr"
  config.method_args = ml_collections.ConfigDict(dict(temperature=0.1))
  config.model.final_features = 512  # a 512-d representation
  config.augment.local_crops.num = 4  # multi-crop: 4 crops of 12 px, area 0.05-0.4
  config.total_steps = 1600
  if runlocal:
    config.model.final_features = 0
    config.augment.local_crops.num = 0
    config.total_steps = 20
    config.heads = ml_collections.ConfigDict(dict(projector_hidden_dim=64,
                                                  projector_output_dim=32))
  return config
