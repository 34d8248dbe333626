r"""MaskFeat, ViT-B/16 on ImageNet-1k: the paper's recipe (84.0% fine-tuned top-1).

  python -m jax_ssl.train --config experiments/imagenet/maskfeat_vit_base.py --workdir gs://.../maskfeat_in1k

Needs `imagenet2012` prepared as array_record in the TFDS data dir (images host-resized to
256 px, cropped on device to 224). Recipe (Wei et al., "Masked Feature Prediction for
Self-Supervised Visual Pre-Training", CVPR 2022, sec. 5 and appendix; PySlowFast's
configs/masked_ssl/in1k_VIT_B_MaskFeat_PT.yaml): ViT-B/16 with CLS token and learned
absolute position embeddings; BEiT's blockwise masking of 40% of the 196 patches (blocks of
>= 16); HOG targets of 9 orientation bins in 8x8 cells, the 4 cells of each 16x16 patch per
RGB channel (108 values), each cell's 9 bins L2-normalised (the official HOGLayerC); a linear prediction head; MSE on
the masked patches; random resized crop 0.5-1 + flip, no colour augmentation; AdamW (0.9,
0.999), lr 2e-4 x B/256 at batch 2048, weight decay 0.05, 30 warmup epochs, cosine, 1600
epochs. Paper: 84.0% top-1 after fine-tuning (ViT-B, 1600 epochs; also the PySlowFast
MaskFeat README).
Fine-tuning (`--protocols finetune`): MaskFeat's 100 epochs, AdamW lr 2e-3 at batch 512
(1e-3 x B/256), layer decay 0.65, weight decay 0.05, 20 warmup epochs, label smoothing 0.1.
Differences: HOG from central differences without Gaussian weighting (the official code
uses Sobel filters and a 16 px Gaussian window; jax_ssl/hog.py), computed on [0, 1] pixels
rather than mean/std-normalised ones; no gradient clipping (the paper clips at norm 0.02);
fine-tuning without mixup, cutmix, RandAugment, random erasing and drop path.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="maskfeat",
      augment=base.augment(crop_scale=(0.5, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=2048,
      optimizer=base.optimizer("adamw", 2e-4, weight_decay=0.05),
      epochs=1600, warmup_epochs=30,
      model=dict(backbone="vit_base", pos_embedding="learned",
                 dtype="bfloat16"),  # mixed precision, as the papers' fp16
      # 56 px smoke-test views: 8 px patches (7x7 tokens), one 8x8 HOG cell per patch.
      runlocal_model=dict(backbone="vit_tiny", patch_size=8, dim=32, depth=2, num_heads=2,
                          dtype="float32"))
  steps_per_epoch = base.TRAIN_EXAMPLES // config.eval.finetune.batch_size
  config.eval.finetune.update(base_learning_rate=1e-3, warmup_steps=20 * steps_per_epoch,
                              layer_decay=0.65)
  if runlocal:
    config.eval.finetune.update(warmup_steps=0)
  return config
