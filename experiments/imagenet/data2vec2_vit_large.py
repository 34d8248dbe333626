r"""data2vec 2.0, ViT-L/16 on ImageNet-1k: the reference's ViT-L image recipe.

  python -m jax_ssl.train --config experiments/imagenet/data2vec2_vit_large.py --workdir gs://.../d2v2_vit_l_in1k

Data and `:runlocal`: as experiments/imagenet/data2vec2_vit_base.py.

Recipe (Baevski et al. 2022; fairseq examples/data2vec/config/v2/large_images_only_task.yaml,
where it differs from ViT-B's): ViT-L/16 (24 blocks, no separate prenet), targets the
average of the top 18 of 24 blocks; inverse block masking of 75% (mask_prob_adjust 0.1,
3x3 kept blocks: 49 of 196 patches kept); the decoder 1024 wide, 3 layers of kernel 5 in 16
groups; EMA 0.9998 -> 0.99999 over the first 150k of 375.3k updates; lr 4e-4 (Adam betas
(0.9, 0.95), weight decay 0.05, 50,040 warmup updates, cosine); 16 masked clones per image
(`clone_batch: 16` in the yaml; the issue's 8 is not what the code's recipe says); 8 images
per GPU. The yaml's world size of 16 GPUs would make 375,300 updates 37.5 epochs; the paper's
ViT-L result is for 150 epochs, i.e. 64 GPUs (its run_config/slurm_8): batch 512 here, so
375,300 updates are 150 epochs with 20 of warmup, and the peak lr is the yaml's 4e-4 (fairseq
does not scale it with the batch: base_learning_rate 2e-4 x 512/256 here).

Reported: ImageNet-1k top-1 86.8% after fine-tuning, ViT-L pretrained for 150 epochs (the
paper's abstract). Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number is the target.

Where this config cannot express the recipe exactly: as data2vec2_vit_base.py (pre-norm
blocks, no gradient clipping, bfloat16, no input normalisation, bilinear crops, the
fine-tuning recipe), and `cls_weight` = 0.01 x 128 rows per GPU (8 images x 16 masks) = 1.28.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)
import data2vec2_vit_base  # noqa: E402


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="data2vec2",
      augment=base.augment(crop_scale=(0.2, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=512,
      optimizer=base.optimizer("adamw", 2e-4, weight_decay=0.05, beta2=0.95),
      epochs=150, warmup_epochs=20,
      method_args=dict(mask_prob=0.75, mask_prob_adjust=0.1, top_k_layers=18, cls_weight=1.28,
                       ema_anneal_fraction=150_000 / 375_300),
      heads=dict(decoder_dim=1024, decoder_kernel=5, decoder_layers=3, decoder_groups=16),
      model=dict(backbone="vit_large", dtype="bfloat16"),
      runlocal_heads=data2vec2_vit_base.RUNLOCAL_HEADS,
      runlocal_model=data2vec2_vit_base.RUNLOCAL_MODEL)
  if runlocal:
    config.method_args.update(data2vec2_vit_base.RUNLOCAL_METHOD_ARGS)
  return config
