r"""RSPNet, R3D-18 on Kinetics-400: the reference's pre-training recipe.

  python -m jax_ssl.train --config experiments/kinetics400/rspnet_r3d18.py --workdir gs://.../rspnet_r3d18_k400

Data: Kinetics-400 as a video folder (_kinetics400_base.py says how). `:runlocal`: a few
steps of the small 3-D CNN.

Recipe (PeihaoChen/RSPNet config/pretrain/resnet18.jsonnet, moco-train-base.jsonnet,
pretrain.py): R3D-18 on three 16-frame 112 px clips at stride 1 (speeds 1 and 2, the "rspnet"
pattern), linear 128-d heads, temperature 0.07, margin 2.0, loss weights A = M = 1, a 16384-key
queue, key-encoder momentum 0.999 (the method's defaults), SGD lr 0.1, momentum 0.9, weight
decay 1e-4, batch 64, cosine over 200 epochs (~240k videos: 3750 steps an epoch).

Reported: 93.7% UCF101 / 64.7% HMDB51 fine-tuned, for S3D-G (the paper's tables give its
other backbones). Not reproduced here. Deviations: the reference's cosine steps per epoch
to lr/1000 (ours per step to 0), warmup 5000 steps (reference none); each clip its own
augmentation draw; no shuffled BN (global BN statistics over the key clips).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _kinetics400_base as base  # noqa: E402  (sibling file; loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "rspnet"
  config.clips.update(dict(stride=1, speeds=(1, 2), speed_pattern="rspnet"))
  config.augment.output_size = 112
  config.model.backbone = "r3d_18"
  config.optimizer.update(dict(name="sgd", base_learning_rate=0.1, weight_decay=1e-4))
  config.global_batch_size = 64
  config.total_steps = 200 * 3750
  if runlocal:
    config.augment.output_size = 32
    config.model.backbone = "video_cnn_small"
    config.optimizer.update(dict(name="adamw", base_learning_rate=1e-3))
    config.global_batch_size = 8
    config.total_steps = 3
    config.method_args = ml_collections.ConfigDict(dict(queue_size=16))
    config.heads = ml_collections.ConfigDict(dict(projector_output_dim=16))
  return config
