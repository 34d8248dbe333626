r"""NEPA, ViT-B/14 on ImageNet-1k: the reference's 1600-epoch pretraining and its fine-tuning.

  python -m jax_ssl.train --config experiments/imagenet/nepa_vit_base.py --workdir gs://.../nepa_vit_b_in1k

Data: `imagenet2012` as array_record in the TFDS data dir (experiments/imagenet/
mae_vit_base.py says how to prepare it). `:runlocal` shrinks it to a few steps of a 2-block
ViT with 8 px patches on 56 px crops.

Recipe (Xu et al., "Next-Embedding Prediction Makes Strong Vision Learners", 2025; the code
github.com/SihanXU/nepa: scripts/pretrain/nepa_b.sh, configs/pretrain/nepa-base-patch14-224,
scripts/finetune/nepa_b_sft.sh, configs/finetune/nepa-base-patch14-224-sft): ViT-B (768
wide, 12 blocks, 12 heads) on 14 px patches of 224 px crops (16 x 16 tokens) with a CLS
token, causal attention, 2-D RoPE (base 100) and no absolute position embedding, QK-norm,
LayerScale 1e-5 and SwiGLU (the paper; the released configs use GELU and reproduce 83.75);
the loss: each output's negative cosine similarity with the next patch's input embedding
(stop-gradient); AdamW, betas (0.9, 0.95), weight decay 0.05, lr 3e-4 x B/256 = 4.8e-3 at
batch 4096, warmup 2.5% (40 epochs) then cosine, 1600 epochs; views: random resized crop
(area 0.08-1) + flip, no colour. Fine-tuning (bidirectional attention, as the reference's
sft configs `is_causal: false`): AdamW, lr 1.5e-3 x B/256 at batch 1024, weight decay 0.05,
layer-wise decay 0.65, label smoothing 0.1, 100 epochs with 20% warmup.

Reported (ViT-B/14, 1600 epochs): 83.8% ImageNet top-1 after fine-tuning (the released
GELU checkpoint: 83.75). Not reproduced here: pretraining at this scale needs accelerators.

Expected result: not measured; the reference's number above is the target.

Where this config cannot express the recipe exactly:
 * Precision: bfloat16 compute with float32 parameters (the reference: bf16 autocast).
 * No RoPE coordinate augmentation (the reference's pos_embed_rescale=2.0: patch
   coordinates scaled by a log-uniform factor in [1/2, 2] per pretraining step).
 * QK-norm LayerNorms with a learned scale (the ViT-B pretraining config: no affine; its
   ViT-L and fine-tuning configs: affine); LayerNorm eps 1e-6 (the reference: 1e-12);
   Xavier-uniform linear layers (truncated normal 0.02).
 * Inputs in [0, 1], not normalised by the ImageNet mean/std; bilinear crops, not bicubic.
 * Fine-tuning is our `eval.finetune`: no mixup/cutmix/RandAugment/random erasing, no
   drop-path 0.1, no EMA of the weights, the patch embedding not frozen (the reference's
   `--freeze_embed True`), AdamW's beta2 0.999 as ours, a parameter-free BatchNorm + linear
   head on the mean of the normalised patch tokens (the reference: mean, then LayerNorm).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)

# NEPA's ViT options (models/vit.py), at every size
NEPA_VIT = dict(causal=True, rope=True, pos_embedding="none", qk_norm=True, mlp="swiglu",
                layer_scale=1e-5)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="nepa",
      augment=base.augment(crop_scale=(0.08, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=4096,
      optimizer=base.optimizer("adamw", 3e-4, weight_decay=0.05, beta2=0.95),
      epochs=1600, warmup_epochs=40,
      model=dict(backbone="vit_base", patch_size=14, dtype="bfloat16", **NEPA_VIT),
      runlocal_model=dict(backbone="vit_tiny", patch_size=8, depth=2, dim=32, num_heads=2,
                          dtype="float32", **NEPA_VIT))
  config.eval.protocols = "finetune"
  if not runlocal:
    steps_per_epoch = base.TRAIN_EXAMPLES // 1024
    config.eval.finetune.update(base_learning_rate=1.5e-3, warmup_steps=20 * steps_per_epoch)
  return config
