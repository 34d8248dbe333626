r"""RSPNet, R3D-18 on UCF101 (split 1's training videos).

  python -m jax_ssl.train --config experiments/ucf101/rspnet_r3d18.py --workdir runs/rspnet_r3d18_ucf101

Data: TFDS `ucf101` (_ucf101_base.py says how). `:runlocal`: 3 steps of the small 3-D CNN.

Recipe (Chen et al., "RSPNet: Relative Speed Perception for Unsupervised Video
Representation Learning", AAAI 2021; PeihaoChen/RSPNet config/pretrain/moco-train-base.jsonnet,
resnet18.jsonnet, pretrain.py): three 16-frame 112 px clips per video at stride 1 from the
host's "rspnet" pattern (speeds 1 and 2: the query and a key at one, a key at the other),
linear 128-d appearance and motion heads, temperature 0.07, margin 2.0, loss weights 1 and
1, a constant key-encoder momentum 0.999 (the method's defaults), a 16384-key queue; SGD at
lr 0.1, momentum 0.9, weight decay 1e-4, cosine, batch 64.

Reported: 93.7% UCF101 / 64.7% HMDB51 after fine-tuning (S3D-G pre-trained on Kinetics-400);
RSPNet pre-trains on Kinetics-400 (experiments/kinetics400/rspnet_r3d18.py), UCF101
pre-training is this file's transplant, with no paper number. Deviations: the reference's
cosine steps per epoch down to lr/1000 (ours per step to 0) after no warmup (ours 500
steps); each clip its own augmentation draw (its other-speed clip shares its key's crop).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _ucf101_base as base  # noqa: E402  (sibling file; loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "rspnet"
  config.clips.update(dict(stride=1, speeds=(1, 2), speed_pattern="rspnet"))
  config.optimizer.update(dict(name="sgd", base_learning_rate=0.1, weight_decay=1e-4))
  config.global_batch_size = 64
  config.total_steps = 200 * 9537 // 64  # 200 epochs of UCF101 split 1's 9537 videos
  if runlocal:
    config.optimizer.update(dict(name="adamw", base_learning_rate=1e-3))
    config.global_batch_size = 8
    config.total_steps = 3
    config.method_args = ml_collections.ConfigDict(dict(queue_size=16))
    config.heads = ml_collections.ConfigDict(dict(projector_output_dim=16))
  return config
