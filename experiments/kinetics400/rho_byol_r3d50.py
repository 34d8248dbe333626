r"""rho-BYOL (rho = 4), R3D-50 on Kinetics-400.

  python -m jax_ssl.train --config experiments/kinetics400/rho_byol_r3d50.py --workdir gs://.../rho_byol_r3d50_k400

Data: Kinetics-400 as a video folder (_kinetics400_base.py says how). `:runlocal`: a few
steps of the small 3-D CNN.

Recipe (Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal
Representation Learning", CVPR 2021; facebookresearch/SlowFast
configs/contrastive_ssl/BYOL_SlowR50_8x8.yaml and slowfast/models/contrastive.py):
`method=byol` with num_clips = rho = 4 clips of 8 frames at stride 8 per video (independent
uniform starts), every clip's prediction against every other clip's EMA target
(`losses.rho_byol`), projector 4096 -> 256 and predictor 4096 (BYOL's defaults), target
momentum 0.996 -> 1 on a cosine, LARS at base lr 1.2 (the yaml's value for rho = 4) with
weight decay 1e-6, 35 warmup epochs, 200 epochs, 224 px.

Reported (SlowFast projects/contrastive_ssl/README.md; its checkpoint
BYOL_SlowR50_8x8_T4_epoch_00200): rho-BYOL, rho = 4, Slow R-50 8x8 pre-trained on
Kinetics-400: 70.1% Kinetics-400 linear, 94.7% UCF101 split 1 fine-tuned (rho = 2: 67.4 /
94.0). Not reproduced. UCF101: transfer only; the paper fine-tunes the Kinetics checkpoint
(SlowFast configs/contrastive_ssl/finetune_ucf_Slow_R50_syn0.yaml), and this repo evaluates a
run on its own dataset only, so there is no UCF101 pre-training file. Deviations: R3D-50 (CVRL's
3-D ResNet-50, the base file's) instead of SlowFast's Slow R-50 (temporal kernels only in
res4/res5, no temporal stride in the stem); the lr is not scaled by SlowFast's
BASE_LR_SCALE_NUM_SHARDS (set it for your batch); SlowFast's loss is -cos / tau with tau 0.5,
i.e. BYOL's 2 - 2 cos up to a constant.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _kinetics400_base as base  # noqa: E402  (sibling file; loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.base_config(runlocal)
  config.method = "byol"
  config.method_args = ml_collections.ConfigDict(dict(num_clips=4, base_momentum=0.996))
  config.clips.update(dict(num_frames=8, stride=8))
  config.optimizer.update(dict(base_learning_rate=1.2, warmup_steps=35 * 234))
  config.global_batch_size = 1024
  config.total_steps = 200 * 234  # 200 epochs of ~240k videos at batch 1024
  if runlocal:
    config.method_args.num_clips = 3
    config.clips.update(dict(num_frames=4, stride=1))
    config.optimizer.update(dict(base_learning_rate=1e-3, warmup_steps=1))
    config.total_steps = 3
    config.global_batch_size = 8
    config.heads = ml_collections.ConfigDict(dict(
        projector_hidden_dim=32, projector_output_dim=16, predictor_hidden_dim=16))
  return config
