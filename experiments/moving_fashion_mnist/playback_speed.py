r"""Playback-speed classification on Moving Fashion-MNIST with the small 3-D CNN.

Command (2-core CPU, offline; builds the dataset on first use):

  python -m jax_ssl.train --config experiments/moving_fashion_mnist/playback_speed.py --workdir runs/playback_speed_mfmnist

Laptop smoke test (seconds): `--config experiments/moving_fashion_mnist/playback_speed.py:runlocal`.

Recipe: the tutorial's speed task after SpeedNet (Benaim et al., CVPR 2020: normal vs sped
up) and Pace Prediction (Wang et al., ECCV 2020: one class per pace)
(`method=temporal_pretext`, task "speed"): the host sampler plays each video's one 6-frame
clip at speed 1, 2 or 3 (frame step 1, 2, 3: at most 16 of the 20 frames, so no clip runs
past the end), a linear classifier on the pooled 3-D CNN features names the speed;
cross-entropy. `method_args.speeds` must equal `clips.speeds` (the classes are the
sampler's speeds). The base file's optimizer (AdamW, lr 2e-3, weight decay 1e-4), 600 steps
of batch 64, one crop / flip / brightness-contrast jitter per clip. Not tuned.

Deviations from the references: SpeedNet's two classes (1x vs 2x) on S3D-G with a
speediness-aware sampling, Pace Prediction's paces (1-4 in its released code) with R(2+1)D /
C3D and an optional contrastive term; here three speeds, a small 3-D CNN, no contrastive
term. A garment's own speed varies from video to video, so a speed class is only
identifiable statistically (as in natural video).

Expected result (`results/playback_speed_mfmnist/results.json`, seed 0, 1.7 min of training
on a 2-vCPU AMD EPYC): linear top-1 garment 0.2654 / motion 0.4187 (raw pixels 0.3617 /
0.2270, random init 0.3095 / 0.3188): above both baselines on the motion labels, which the
task reads. Run history: `results/playback_speed_mfmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _moving_fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)

SPEEDS = (1, 2, 3)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _moving_fashion_mnist_base.switches(arg)
  config = _moving_fashion_mnist_base.base_config(runlocal)
  config.method = "temporal_pretext"
  config.method_args = ml_collections.ConfigDict(dict(task="speed", speeds=SPEEDS))
  config.clips.update(num_frames=6, stride=1, speeds=SPEEDS)
  if runlocal:
    config.clips.num_frames = 4
  return config
