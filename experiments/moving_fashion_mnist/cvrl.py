r"""CVRL on Moving Fashion-MNIST with the small 3-D CNN.

Command (2-core CPU, offline; builds the dataset on first use):
  python -m jax_ssl.train --config experiments/moving_fashion_mnist/cvrl.py --workdir runs/cvrl_mfmnist
Smoke test (seconds): `--config experiments/moving_fashion_mnist/cvrl.py:runlocal`.

Recipe: CVRL (Qian et al., CVPR 2021; tensorflow/models official/projects/video_ssl): two
clips of each video whose starts come from CVRL's decreasing-density interval sampler
(`clips.starts="cvrl"`), each with one crop / flip / jitter draw for all its frames, InfoNCE
over the global batch of clips at temperature 0.1 (`losses.cvrl`: loss_a + loss_b, twice
SimCLR's NT-Xent). The paper's number is Kinetics-400 linear 66.1% (R3D-50, 800 epochs:
experiments/kinetics400/cvrl_r3d50.py).

Expected result (`results/cvrl_mfmnist/results.json`, seed 0, 3.9 min of training on a 2-vCPU
AMD EPYC): linear top-1 garment 0.3616 / motion 0.8219 (raw pixels 0.4322 / 0.2235, random
init 0.2722 / 0.5029): above both baselines on the motion labels. Run history:
`results/cvrl_mfmnist/notes.md`.

Deviations from the reference recipe, for the 2-core budget: the base's video_cnn_small on
8 frames at stride 2 of 48 px (CVRL: R3D-50, 16 x 224 px frames at stride 2), a 2-layer
512 -> 128 projector (CVRL: 3 hidden layers of 2048), AdamW (CVRL: SGD/LARS at 0.32 x B/1024
with L2 1e-6 in the loss), batch 64 for 600 steps; no Gaussian blur (one channel).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _moving_fashion_mnist_base as base  # noqa: E402  (sibling file; loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "cvrl"  # temperature 0.1: the method's default
  config.clips.starts = "cvrl"
  config.heads = ml_collections.ConfigDict(dict(projector_hidden_dim=512,
                                                projector_num_layers=2))
  if runlocal:
    config.heads.update(projector_hidden_dim=32, projector_output_dim=16)
  return config
