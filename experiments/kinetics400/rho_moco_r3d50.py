r"""rho-MoCo (rho = 4), R3D-50 on Kinetics-400.

  python -m jax_ssl.train --config experiments/kinetics400/rho_moco_r3d50.py --workdir gs://.../rho_moco_r3d50_k400

Data: Kinetics-400 as a video folder (_kinetics400_base.py says how). `:runlocal`: a few
steps of the small 3-D CNN.

Recipe (Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal
Representation Learning", CVPR 2021; facebookresearch/SlowFast
configs/contrastive_ssl/MoCo_SlowR50_8x8.yaml, slowfast/models/contrastive.py
(`contrastive_forward` with SEQUENTIAL) and slowfast/config/defaults.py): `method=moco_v2`
with num_clips = rho = 4 clips (TRAIN_CROP_NUM_TEMPORAL) of 8 frames at stride 8 per video
(independent uniform starts), every clip's query against every other clip's key from the
momentum encoder (`losses.rho_moco`), temperature 0.1, a 3-layer projector 2048 -> 2048 ->
128 (NUM_MLP_LAYERS 3, MLP_DIM 2048, DIM 128), a queue of 65,536 keys (QUEUE_LEN), key
momentum 0.994 -> 1 on a cosine over training (MOMENTUM_ANNEALING: this repo's
`optim.cosine_momentum`); one crop (area 0.2-0.766, aspect 3/4-4/3), flip, colour jitter
(p 0.8; brightness, contrast, saturation 0.6, hue 0.15), grayscale (p 0.2) and blur (p 0.5)
draw per clip (SSL_MOCOV2_AUG); SGD with momentum 0.9 and weight decay 1e-4 (the default
SOLVER.WEIGHT_DECAY), lr 0.1 per machine of 64 clips (TRAIN.BATCH_SIZE 64 on 8 GPUs, scaled by
the machine count: BASE_LR_SCALE_NUM_SHARDS), 35 warmup epochs, cosine, 200 epochs, 224 px.
SlowFast sums the 4 queries' losses where `losses.rho_moco` averages them (4x smaller
gradients): lr x 4 and weight decay / 4 give the same SGD steps, so 0.4 per 64 clips
(1.6 x B/256) with weight decay 2.5e-5. Batch 512 (8 such machines; how many the paper
used is not checked here): 468 steps an epoch of about 240k videos, 93,600 steps.

Reported (SlowFast projects/contrastive_ssl/README.md; its checkpoint
MoCo_SlowR50_8x8_T4_epoch_00200): rho-MoCo, rho = 4, Slow R-50 8x8 pre-trained on
Kinetics-400: 71.0% Kinetics-400 linear, 94.5% UCF101 split 1 fine-tuned (rho = 2: 66.6 /
91.3). Not reproduced here. UCF101: transfer only; the paper pre-trains on Kinetics and
fine-tunes on UCF101 (SlowFast configs/contrastive_ssl/finetune_ucf_Slow_R50_syn0.yaml: SGD
at lr 0.005 per 64 clips, weight decay 1e-4, dropout 0.5, 200 epochs); this repo evaluates a
run on its own dataset only, so there is no UCF101 pre-training file for rho-MoCo.

Deviations: R3D-50 (CVRL's 3-D ResNet-50, the base file's) instead of SlowFast's Slow R-50
(temporal kernels only in res4/res5, no temporal stride in the stem); one queue of 65,536 keys
per clip position (`moco_v2`'s state) where SlowFast keeps one queue for all clips' keys
(MOCO_MULTI_VIEW_QUEUE): each query sees as many negatives, 4x older on average; BatchNorm
between the projector's layers (SlowFast's BN_MLP is off for MoCo); parameters update from the
first step (SlowFast skips the updates while its queue first fills: 65,536 / B steps);
warmup starts at 0 (SlowFast: 0.001), no Nesterov momentum (SlowFast's default), no weight
decay on biases (`optim.decay_mask`; SlowFast exempts only BatchNorm).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _kinetics400_base as base  # noqa: E402  (sibling file; loaded by path)

TRAIN_VIDEOS = 240_000  # about: Kinetics-400's training list as still downloadable varies
BATCH = 512
STEPS_PER_EPOCH = TRAIN_VIDEOS // BATCH


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "moco_v2"
  config.method_args = ml_collections.ConfigDict(dict(
      num_clips=4, temperature=0.1, queue_size=65536, base_momentum=0.994))
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_output_dim=128, projector_num_layers=3))
  config.clips.update(dict(num_frames=8, stride=8))
  config.augment.update(dict(crop_scale=(0.2, 0.766), brightness=0.6, contrast=0.6,
                             saturation=0.6, hue=0.15))
  config.optimizer.update(dict(name="sgd", base_learning_rate=1.6, weight_decay=2.5e-5,
                               warmup_steps=35 * STEPS_PER_EPOCH))
  config.global_batch_size = BATCH
  config.total_steps = 200 * STEPS_PER_EPOCH
  if runlocal:
    config.method_args.update(dict(num_clips=3, queue_size=64))
    config.heads.update(dict(projector_hidden_dim=32, projector_output_dim=16))
    config.clips.update(dict(num_frames=4, stride=1))
    config.optimizer.update(dict(name="adamw", base_learning_rate=1e-3, weight_decay=1e-4,
                                 warmup_steps=1))
    config.total_steps = 3
    config.global_batch_size = 8
  return config
