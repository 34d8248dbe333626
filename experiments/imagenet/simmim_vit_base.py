r"""SimMIM, ViT-Base/16 on ImageNet-1k: the paper's 800-epoch recipe.

  python -m jax_ssl.train --config experiments/imagenet/simmim_vit_base.py --workdir gs://.../simmim_vit_b_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (TFDS builds it from
the manually downloaded ILSVRC2012 tars: `tfds build imagenet2012 --file_format array_record
--manual_dir DIR` where they are, then copy it into --config.dataset.data_dir); nothing
downloads at run time. Images are resized on the host to `dataset.image_size` squared, then
cropped on device (random resized crop to 224). `:runlocal` shrinks it to a few steps of a
2-block ViT with 4 px patches on 56 px crops (a 14x14 grid, so 2x2-token mask units fit).

Recipe (Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022, and
the official github.com/microsoft/SimMIM, configs/vit_base__800ep/
simmim_pretrain__vit_base__img224__800ep.yaml, config.py, data/data_simmim.py,
main_simmim.py): ViT-B/16 at 224 px, random masking of 32x32 px units (2x2 tokens) at ratio
0.6, a learned mask token in place of the masked patch embeddings, a linear decoder to the
pixels, L1 on the masked pixels; AdamW (0.9, 0.999), weight decay 0.05, lr 1e-4 x B/512 =
4e-4 at batch 2048 (here 5e-5 x B/256), 10 warmup epochs, 800 epochs; views: random resized
crop (area 0.67-1, aspect 3/4-4/3) to 224 + horizontal flip.

Reported (ViT-B, 800 epochs): 83.8% ImageNet top-1 after fine-tuning (Xie et al. 2022).
Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * Architecture: the released ViT uses a shared relative position bias and no absolute
   position embedding, layer scale (init 0.1) and drop path 0.1; ours has fixed sin-cos
   absolute positions, no layer scale, no drop path.
 * Schedule: the released config warms up from 5e-7 and then steps the lr down x0.1 at
   epoch 700; ours warms up from 0 and decays on a cosine. It clips gradients at norm 5;
   we do not clip.
 * Precision: bfloat16 compute with float32 parameters (the code: apex AMP O1).
 * Inputs are in [0, 1], not normalised by the ImageNet mean/std, so the L1 targets are
   ~4x smaller; resampling is bilinear with anti-aliasing, not bicubic.
 * Evaluation: features are the mean of the normalised patch tokens; the reported number
   needs the fine-tuning protocol (`eval.finetune`).
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
      method="simmim",
      augment=base.augment(crop_scale=(0.67, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=2048,
      optimizer=base.optimizer("adamw", 5e-5, weight_decay=0.05),
      epochs=800, warmup_epochs=10,
      model=dict(backbone="vit_base", dtype="bfloat16"),
      runlocal_model=dict(backbone="vit_tiny", patch_size=4, depth=2, dim=32, num_heads=2,
                          dtype="float32"))
