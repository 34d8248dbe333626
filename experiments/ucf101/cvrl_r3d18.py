r"""CVRL, R3D-18 on UCF101 (split 1's training videos).

  python -m jax_ssl.train --config experiments/ucf101/cvrl_r3d18.py --workdir runs/cvrl_r3d18_ucf101

Data: TFDS `ucf101` (_ucf101_base.py says how to build it; nothing downloads at run time).
`:runlocal` trains 3 steps of the small 3-D CNN on 4-frame 32 px clips (the tests run it on
`tfds.testing.mock_data`).

Recipe (Qian et al., "Spatiotemporal Contrastive Video Representation Learning", CVPR 2021;
tensorflow/models official/projects/video_ssl): two 16-frame clips at temporal stride 2 of
each video, their starts from CVRL's decreasing-density interval sampler
(`clips.starts="cvrl"`), one crop / flip / colour-jitter / grayscale draw per clip shared by
its frames, a projector of 3 hidden layers of 2048 (BN, ReLU) then 128 and InfoNCE over the
global batch at temperature 0.1 (the method's defaults: `losses.cvrl`, the reference's
loss_a + loss_b), LARS at 0.32 x B/1024 with weight decay 1e-6 (the base file's).

Reported: CVRL pre-trains on Kinetics (66.1% Kinetics-400 linear, R3D-50, 800 epochs:
experiments/kinetics400/cvrl_r3d50.py); UCF101 pre-training is this file's transplant of that
recipe, with no paper number. Deviations: R3D-18 at 112 px (CVRL: R3D-50 at 224 px), batch
512 for 50k steps (CVRL: 1024 for 800 epochs); the reference's L2 regulariser in the loss is
the optimizer's weight decay here; no Gaussian blur per clip (CVRL blurs with p 0.5).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _ucf101_base as base  # noqa: E402  (sibling file; loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "cvrl"  # temperature 0.1 and the 2048 x 3 -> 128 projector: the defaults
  config.clips.starts = "cvrl"
  if runlocal:
    config.heads = ml_collections.ConfigDict(dict(projector_hidden_dim=32,
                                                  projector_output_dim=16))
  return config
