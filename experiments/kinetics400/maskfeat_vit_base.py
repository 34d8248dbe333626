r"""MaskFeat on video, ViT-B/16 on Kinetics-400: PySlowFast's MaskFeat video recipe on a ViT.

  python -m jax_ssl.train --config experiments/kinetics400/maskfeat_vit_base.py --workdir gs://.../maskfeat_vit_b_k400

Data: Kinetics-400 as a video folder (_kinetics400_base.py says how); nothing downloads at
run time. `:runlocal` shrinks it to a few steps of a 1-block video ViT on 4-frame 32 px
clips.

Recipe (Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training",
CVPR 2022; PySlowFast configs/masked_ssl/k400_MVITv2_S_16x4_MaskFeat_PT.yaml and
slowfast/models/masked.py): 16 frames at sampling rate 4, 224 px; 40% of the tokens masked,
replaced by a learned mask token; a linear head predicts each masked token's HOG target,
the HOG of its patch in the tubelet's first frame (9 bins, 8x8 cells in 16x16 patches, per
colour channel, each cell's histogram L2-normalised: HOGLayerC, `_get_hog_label_3d`); MSE;
AdamW (0.9, 0.999), weight decay 0.05, lr 1e-4 per 32 clips (BASE_LR 1e-4 for a node's
batch of 32, scaled by the number of nodes) = 1.6e-3 at batch 512, 10 warmup epochs then
cosine, 300 epochs (about 240k training videos: 468 steps an epoch, 140,400 steps); views:
a random resized crop (area 0.5-1, aspect 3/4-4/3) and flip per clip, no colour.

Reported (projects/maskfeat/README.md): 82.2% Kinetics-400 top-1 fine-tuned for MViTv2-S
16x4 (300 epochs), 84.3% for MViTv2-L (800 epochs); there is no ViT-B video MaskFeat number,
and no MViT here, so this file has no published target. Not reproduced here: pretraining at
this scale needs accelerators. UCF101: none; the paper reports no UCF101 number (its abstract:
Kinetics-400/600/700, AVA, SSv2) and gives no UCF101 recipe, so there is no UCF101 file.

Where this config cannot express the recipe exactly:
 * A plain ViT-B with 2x16x16 tubelets instead of MViTv2-S (its pooling attention and
   relative positions); the head reads the last block's tokens.
 * Masking: BEiT's blockwise mask of the 14x14 spatial grid repeated over the 8 time slots
   (a tube of blocks, jax_ssl/methods/maskfeat.py), not MaskingGenerator3D's cubes (spatial
   blocks of a random temporal extent in an 8x7x7 mask window).
 * HOG by central differences with zero borders and no Gaussian window (jax_ssl/hog.py), not
   HOGLayerC's Sobel filters on reflected borders.
 * No gradient clipping at norm 0.02; the cosine ends at 0, not 1e-6; warmup starts at 0.
 * Precision: bfloat16 compute with float32 parameters.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _kinetics400_base  # noqa: E402  (sibling file; experiment files are loaded by path)

TRAIN_VIDEOS = 240_000  # about: Kinetics-400's training list as still downloadable varies
BATCH = 512
STEPS_PER_EPOCH = TRAIN_VIDEOS // BATCH


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _kinetics400_base.switches(arg)
  config = _kinetics400_base.base_config(runlocal)
  config.method = "maskfeat"
  # mask_ratio 0.4, 8x8 cells, 9 bins, per-cell normalisation: the method's defaults
  config.clips.update(num_frames=16, stride=4)
  config.augment.update(output_size=224, crop_scale=(0.5, 1.0), jitter_prob=0.0,
                        grayscale_prob=0.0, blur_prob=0.0)
  config.model = ml_collections.ConfigDict(dict(
      backbone="vit_base", patch_size=16, tubelet_size=2, dtype="bfloat16"))
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_learning_rate=8e-4, weight_decay=0.05,
      warmup_steps=10 * STEPS_PER_EPOCH))
  config.global_batch_size = BATCH
  config.total_steps = 300 * STEPS_PER_EPOCH
  if runlocal:
    config.method_args = ml_collections.ConfigDict(dict(min_block_patches=4, cell_size=4))
    config.clips.update(num_frames=4, stride=1)
    config.augment.output_size = 32
    config.model.update(backbone="vit_tiny", patch_size=8, dim=32, depth=1, num_heads=2,
                        dtype="float32")
    config.optimizer.warmup_steps = 1
    config.global_batch_size = 8
    config.total_steps = 3
  return config
