r"""Pace Prediction, R(2+1)D-18 on UCF101 (split 1's training videos).

  python -m jax_ssl.train --config experiments/ucf101/pace_prediction_r2plus1d18.py --workdir runs/pace_prediction_r2plus1d18_ucf101

Data: TFDS `ucf101` (_ucf101_base.py says how; nothing downloads at run time). `:runlocal`:
3 steps of the small 3-D CNN on 4-frame 32 px clips (the tests run UCF101 files on
`tfds.testing.mock_data`).

Recipe (Wang, Jiao & Liu, "Self-Supervised Video Representation Learning by Pace
Prediction", ECCV 2020; laura-wang/video-pace train.py, datasets/ucf101.py and its README's
c3d/r3d/r21d command): `method=temporal_pretext`, task "speed": one 16-frame clip per video
at a uniform start, played at pace 1, 2, 3 or 4 (frame step = the pace: train.py's
`--max_sr 4`, label = pace - 1), a linear classifier on the pooled features names the pace;
cross-entropy. 112 px crops, horizontal flip, colour jitter with p 0.8 (brightness,
contrast, saturation 0.8, hue 0.2; no grayscale, no blur); SGD with momentum 0.9 and weight
decay 5e-3 at lr 1e-3, batch 30, 18 epochs of 10 passes over split 1's 9537 videos (the
dataset lists each video 10 times), the lr divided by 10 after epochs 6 and 12.

Reported: the paper's UCF101 (and HMDB51) fine-tuning accuracies of the R(2+1)D pre-trained
this way are not checked in here (the reference repository's README gives no numbers and its
evaluation code is unreleased). Kinetics-400: no file; the released code has only this UCF101
loader (train.py's `--dataset` names k400, but no Kinetics loader or command is released),
so the Kinetics recipe is not checked here.

Deviations:
 * R(2+1)D-18 (torchvision's) instead of the reference's R2Plus1DNet((1, 1, 1, 1)) (one
   residual block per stage).
 * Batch 32 (the reference's 30 rounded to split over 8 devices): 18 x 10 x 9537 / 32 =
   53,645 steps, the lr 1e-3 unscaled; a cosine from 1e-3 to 0 with no warmup instead of the
   step decay.
 * Views: the base file's random resized crop (area 0.3-1) of the 256 px frames, not a fixed
   112 crop of frames resized to 128x171; one colour-jitter draw per clip (the reference
   draws one per frame); frames past a video's end repeat its last frame (the reference loops
   back to frame 1).
 * No contrastive term: the released train.py trains the pace loss alone, as here.
 * Evaluation: the base file's frozen-feature protocols (the paper's number needs fine-tuning:
   add `finetune` to `eval.protocols`; `eval.finetune` is this repo's recipe, not the paper's).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _ucf101_base as base  # noqa: E402  (sibling file; loaded by path)

PACES = (1, 2, 3, 4)  # train.py --max_sr 4: sampling rates 1..4
TRAIN_VIDEOS = 9537  # split 1
BATCH = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "temporal_pretext"
  config.method_args = ml_collections.ConfigDict(dict(task="speed", speeds=PACES))
  config.clips.update(dict(num_frames=16, stride=1, speeds=PACES))
  config.model.backbone = "r2plus1d_18"
  config.augment.update(dict(grayscale_prob=0.0, blur_prob=0.0))  # jitter: the defaults
  config.optimizer.update(dict(name="sgd", base_learning_rate=1e-3, lr_scaling="none",
                               weight_decay=5e-3, warmup_steps=0))
  config.global_batch_size = BATCH
  config.total_steps = 18 * 10 * TRAIN_VIDEOS // BATCH
  if runlocal:
    config.clips.num_frames = 4
    config.model.backbone = "video_cnn_small"
    config.optimizer.update(dict(name="adamw", base_learning_rate=1e-3, lr_scaling="linear",
                                 weight_decay=1e-4, warmup_steps=1))
    config.global_batch_size = 8
    config.total_steps = 3
  return config
