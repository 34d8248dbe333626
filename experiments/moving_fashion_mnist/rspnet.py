r"""RSPNet on Moving Fashion-MNIST with the small 3-D CNN.

Command (2-core CPU, offline; builds the dataset on first use):
  python -m jax_ssl.train --config experiments/moving_fashion_mnist/rspnet.py --workdir runs/rspnet_mfmnist
Smoke test (seconds): `--config experiments/moving_fashion_mnist/rspnet.py:runlocal`.

Recipe: RSPNet (Chen et al., AAAI 2021; PeihaoChen/RSPNet): three clips per video from the
host sampler's "rspnet" pattern (clips.speeds=(1, 2): the query and a key at one speed, a key
at the other speed starting where the first key starts), appearance InfoNCE with both keys as
positives against a queue, and the relative-speed margin ranking (margin 2 on the
similarities over tau = 0.07), a constant-momentum key encoder. The paper's numbers are
UCF101 fine-tuning 93.7% / HMDB51 64.7% (S3D-G, Kinetics-400 pre-training);
experiments/ucf101/rspnet_r3d18.py and experiments/kinetics400/rspnet_r3d18.py are the
R3D-18 recipes.

Expected result (`results/rspnet_mfmnist/results.json`, seed 0, 3.2 min of training on a
2-vCPU AMD EPYC): linear top-1 garment 0.3039 / motion 0.4457 (raw pixels 0.3814 / 0.2286,
random init 0.3072 / 0.3754): above both baselines on the motion labels. Run history:
`results/rspnet_mfmnist/notes.md`.

Deviations, for the 2-core budget: video_cnn_small on 8 frames at stride 1 of 48 px (RSPNet:
16 x 112 px), a 4096-key queue (RSPNet: 16384) and key-encoder momentum 0.99 (RSPNet: 0.999
over 200 epochs; 600 steps need a faster one), AdamW (RSPNet: SGD lr 0.1, momentum 0.9,
weight decay 1e-4, cosine to lr/1000 over 200 epochs, batch 64 per config), batch 64; each
clip its own augmentation draw (the reference's other-speed clip shares its key's crop).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _moving_fashion_mnist_base as base  # noqa: E402  (sibling file; loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "rspnet"  # temperature 0.07, margin 2, linear 128-d heads: the defaults
  config.clips.update(dict(stride=1, speeds=(1, 2), speed_pattern="rspnet"))
  config.method_args = ml_collections.ConfigDict(dict(queue_size=4096, base_momentum=0.99))
  if runlocal:
    config.method_args.queue_size = 64
    config.heads = ml_collections.ConfigDict(dict(projector_output_dim=16))
  return config
