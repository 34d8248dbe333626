r"""MAE, ViT-Base/16 on ImageNet-1k: the paper's 1600-epoch recipe.

  python -m jax_ssl.train --config experiments/imagenet/mae_vit_base.py --workdir gs://.../mae_vit_b_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (TFDS builds it from
the manually downloaded ILSVRC2012 tars: `tfds build imagenet2012 --file_format array_record
--manual_dir DIR` where they are, then copy it into --config.dataset.data_dir); nothing
downloads at run time. Images are resized on the host to `dataset.image_size` squared, then
cropped on device (random resized crop to 224). `:runlocal` shrinks it to a few steps of a
2-block ViT with 8 px patches on 56 px crops.

Recipe (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, appendix
A.1, Table 8, and the official code's main_pretrain.py / models_mae.py): ViT-B/16 encoder
with a CLS token and fixed 2-D sin-cos position embeddings; 75% random masking; decoder 512
wide, 8 blocks, 16 heads, its own sin-cos positions; MSE on the masked patches against
per-patch normalised pixels (norm_pix_loss); AdamW with betas (0.9, 0.95), weight decay
0.05, lr 1.5e-4 x B/256 = 2.4e-3 at batch 4096, 40 warmup epochs then cosine, 1600 epochs;
views: random resized crop (area 0.2-1) to 224 + horizontal flip, no colour.

Reported (ViT-B, 1600 epochs): 83.6% ImageNet top-1 after fine-tuning, 68.0% linear probe
(He et al. 2021). Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * Precision: bfloat16 compute with float32 parameters (the paper: fp16 mixed precision).
 * Inputs are in [0, 1], not normalised by the ImageNet mean/std (with norm_pix targets this
   only changes the patch embedding's input scale); the crop's resampling is bilinear with
   anti-aliasing, not bicubic.
 * Weight decay skips every bias and norm parameter (MAE's add_weight_decay too), and also
   decays the CLS token ([1, 1, D]) as MAE's does.
 * Evaluation: our linear probe (kNN and logistic regression on the mean of the normalised
   patch tokens) differs from MAE's (the CLS token, BatchNorm without affine, LARS, 90
   epochs); the fine-tuning numbers need the fine-tuning protocol (`eval.finetune`).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  return base.make_config(
      runlocal=runlocal,
      method="mae",
      augment=base.augment(crop_scale=(0.2, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=4096,
      optimizer=base.optimizer("adamw", 1.5e-4, weight_decay=0.05, beta2=0.95),
      epochs=1600, warmup_epochs=40,
      model=dict(backbone="vit_base", dtype="bfloat16"),
      runlocal_heads=dict(decoder_dim=32, decoder_depth=1, decoder_num_heads=2),
      runlocal_model=dict(backbone="vit_tiny", patch_size=8, depth=2, dim=32, num_heads=2,
                          dtype="float32"))
