r"""VideoMAE, ViT-B/16 on Kinetics-400: the reference's 1600-epoch recipe.

  python -m jax_ssl.train --config experiments/kinetics400/videomae_vit_base.py --workdir gs://.../videomae_vit_b_k400

Data: Kinetics-400 as a video folder (_kinetics400_base.py says how); nothing downloads at
run time. `:runlocal` shrinks it to a few steps of a 1-block video ViT on 4-frame 32 px
clips.

Recipe (Tong et al., "VideoMAE", NeurIPS 2022; MCG-NJU/VideoMAE
scripts/kinetics/videomae_vit_base_patch16_224_tubemasking_ratio_0.9_epoch_1600/pretrain.sh,
run_mae_pretraining.py, modeling_pretrain.py): ViT-B/16 with 2x16x16 tubelets on 16 frames
at sampling rate 4, 224 px; tube masking at 90%; decoder 384 wide, 4 blocks, 6 heads
(the method's defaults) with 1-D sinusoid positions; MSE on the masked tubelets against
per-tubelet per-channel normalised pixels (the method's default); AdamW (0.9, 0.95), weight
decay 0.05, lr 1.5e-4 x B/256 = 1.2e-3 at batch 2048 (32 x 64 GPUs), 40 warmup epochs then
cosine, 1600 epochs (about 240k training videos: 117 steps an epoch, 187,200 steps); views:
a multi-scale crop per clip, no flip, no colour.

Reported (its MODEL_ZOO.md): 81.5% Kinetics-400 top-1 after fine-tuning (16 frames, 5 clips x
3 crops at test), 80.0% after 800 epochs. Not reproduced here: pretraining at this scale
needs accelerators.

Where this config cannot express the recipe exactly:
 * The crop is a random resized crop (area 0.3-1), not GroupMultiScaleCrop's scales 1 / 0.875
   / 0.75 / 0.66 of the short side; the cosine ends at 0, not min_lr 1e-5 x B/256; warmup
   starts at 0, not 1e-6 x B/256.
 * The encoder's positions are the video ViT's (models/video_vit.py); the decoder's are
   VideoMAE's 1-D sinusoid table; the encoder-to-decoder map has a bias.
 * Precision: bfloat16 compute with float32 parameters (the reference: fp16 mixed).
 * Evaluation: the fine-tuning number needs the fine-tuning protocol and 5 x 3 test views.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _kinetics400_base  # noqa: E402  (sibling file; experiment files are loaded by path)

TRAIN_VIDEOS = 240_000  # about: Kinetics-400's training list as still downloadable varies
BATCH = 2048
STEPS_PER_EPOCH = TRAIN_VIDEOS // BATCH


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _kinetics400_base.switches(arg)
  config = _kinetics400_base.base_config(runlocal)
  config.method = "videomae"
  # mask_ratio 0.9, normalised targets and the ViT-B decoder: the method's defaults
  config.clips.update(num_frames=16, stride=4)
  config.augment.update(output_size=224, crop_scale=(0.3, 1.0), flip_prob=0.0,
                        jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
  config.model = ml_collections.ConfigDict(dict(
      backbone="vit_base", patch_size=16, tubelet_size=2, dtype="bfloat16"))
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_learning_rate=1.5e-4, weight_decay=0.05, beta2=0.95,
      warmup_steps=40 * STEPS_PER_EPOCH))
  config.global_batch_size = BATCH
  config.total_steps = 1600 * STEPS_PER_EPOCH
  if runlocal:
    config.clips.update(num_frames=4, stride=1)
    config.augment.output_size = 32
    config.model.update(backbone="vit_tiny", patch_size=8, dim=32, depth=1, num_heads=2,
                        dtype="float32")
    config.heads = ml_collections.ConfigDict(dict(decoder_dim=16, decoder_depth=1,
                                                  decoder_num_heads=2))
    config.optimizer.warmup_steps = 1
    config.global_batch_size = 8
    config.total_steps = 3
  return config
