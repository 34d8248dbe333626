r"""I-JEPA, ViT-H/14 on ImageNet-1k: the official repository's 300-epoch recipe.

  python -m jax_ssl.train --config experiments/imagenet/ijepa_vit_huge.py --workdir gs://.../ijepa_vit_h14_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (see
experiments/imagenet/mae_vit_base.py); nothing downloads at run time. `:runlocal` shrinks it
to a few steps of a 2-block ViT with 8 px patches on 56 px crops (7x7 tokens).

Recipe (Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture", CVPR 2023; facebookresearch/ijepa configs/in1k_vith14_ep300.yaml
with src/train.py, src/helper.py and src/masks/multiblock.py): ViT-H/14 at 224 px (16x16
tokens) with fixed 2-D sin-cos positions and no CLS token; batch 16 x 128 = 2048; AdamW
(betas 0.9, 0.999; biases and norms without decay) at lr 1e-3, not scaled by the batch,
after 40 warmup epochs, cosine to the end of 300 epochs; weight decay 0.04 -> 0.4 on a
cosine; EMA target momentum 0.996 -> 1.0 linearly; multi-block masks: 4 target blocks of
scale 0.15-0.2 and aspect 0.75-1.5, one context block of scale 0.85-1 (square) without the
targets, min_keep 10; the predictor 384 wide, 12 blocks, with the encoder's 16 heads;
smooth-L1 against the target encoder's LayerNorm'd outputs; views: random resized crop
(area 0.3-1) to 224, no flip, no colour; bfloat16.

Reported: 79.3% ImageNet linear top-1 (paper Table 1, ViT-H/14, 300 epochs) and 73.3% with 1%
of the labels (Table 2); figures recalled from the paper, to check against it. The linear
probe there reads the target encoder's average-pooled last layer, as ours (the method's
`evaluation_encoder` is the target). Not reproduced here: ImageNet pretraining needs
accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * The context: each image's is cut to Kc = 27% of the tokens (69 of 256) at random, or
   padded (the reference cuts every image of a batch of 128 to the batch's smallest count,
   27% on average, keeping the first tokens in raster order); blocks may touch the last row
   and column (the reference's `torch.randint(0, H - h)` never places one there; fixed);
   when 20 positions of the context block all keep <= 10 tokens, the whole block is used
   (the reference relaxes the targets one by one): jax_ssl/multiblock.py `multiblock_masks`.
 * The learning rate warms up from 0 (the reference's start_lr 2e-4) and decays to 0 (its
   final_lr 1e-6).
 * The predictor's linear layers are Xavier-uniform, not trunc-normal(0.02) with the
   reference's per-depth rescaling; the encoder's are Xavier-uniform too.
 * No per-channel mean/std normalisation of the inputs; the crop's resampling is bilinear, not
   bicubic; the host resizes to 256 px before the crop.
 * The reference's loss is all-reduced as an average of per-GPU means (equal counts); here the
   mean over the global batch's target tokens, the same number.
"""

import os
import sys
from typing import Any, Mapping

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def ijepa_config(arg: str | None, *, model: Mapping[str, Any], heads: Mapping[str, Any],
                 epochs: int) -> ml_collections.ConfigDict:
  """The reference's ImageNet recipe for a ViT `model` and predictor `heads` over `epochs`
  (40 of them warmup, as its configs)."""
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="ijepa",
      # masks, loss and EMA 0.996 -> 1: the method's defaults (jax_ssl/methods/ijepa.py)
      augment=base.augment(crop_scale=(0.3, 1.0), flip_prob=0.0, jitter_prob=0.0,
                           grayscale_prob=0.0, blur_prob=0.0),
      global_batch_size=2048,
      optimizer=base.optimizer("adamw", 1e-3, weight_decay=0.04, weight_decay_end=0.4,
                               lr_scaling="none"),
      epochs=epochs, warmup_epochs=40,
      heads=heads,
      model=dict(model, cls_token=False, dtype="bfloat16"),
      runlocal_heads=dict(predictor_dim=16, predictor_depth=1, predictor_num_heads=2),
      runlocal_model=dict(backbone="vit_tiny", patch_size=8, depth=2, dim=32, num_heads=2,
                          cls_token=False, dtype="float32"))
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  # predictor: pred_emb_dim 384, pred_depth 12, the encoder's 16 heads (the method's defaults)
  return ijepa_config(arg, model=dict(backbone="vit_huge", patch_size=14), heads={},
                      epochs=300)
