r"""I-JEPA, ViT-Small/4 on CIFAR-10: the reference's ImageNet recipe on 8x8 tokens.

  python -m jax_ssl.train --config experiments/cifar10/ijepa_vit_small.py --workdir runs/ijepa_c10

Data and `:runlocal` (here a 2-block ViT of width 32): see `_cifar10_base.py`.

Recipe: there is no published CIFAR-10 recipe for I-JEPA (the paper pretrains on ImageNet
only and reports CIFAR-10 as a transfer task), nor a CIFAR ViT recipe in this repository's
solo-learn files; this is the reference's ImageNet recipe (facebookresearch/ijepa
configs/in1k_vith14_ep300.yaml, experiments/imagenet/ijepa_vit_huge.py) on CIFAR-10's
32 px images: ViT-Small (384 wide, 12 blocks, 6 heads) with 4 px patches (8x8 tokens), fixed
sin-cos positions, no CLS token; the multi-block masks with the reference's ranges (targets
3x3 to 4x3 tokens, a 7x7 context block; Kc = 27% = 17 tokens, the context keeping 14 to 31
tokens, 5th to 95th percentile); the predictor 192 wide (half the encoder, as 384 is of
ViT-B), 6 blocks, the encoder's 6 heads; AdamW at lr 1e-3, not scaled by the batch, after 40
warmup epochs, cosine to the end of 300 epochs, weight decay 0.04 -> 0.4; EMA 0.996 -> 1;
smooth-L1; batch 512; views: random resized crop (area 0.3-1) to 32 px, no flip, no colour.

Reported: none for this setting (no I-JEPA CIFAR-10 pretraining has been published); judge
it against its random initialisation and raw pixels (`eval.baselines`).

Expected result: not measured (300 epochs of a ViT-S need an accelerator).

Where this config cannot express the recipe exactly: as experiments/imagenet/ijepa_vit_huge.py
(context cut and padding, the fixed block positions, warmup from 0 and decay to 0, Xavier
init); what every CIFAR-10 file shares: `_cifar10_base.py`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="ijepa",
      # masks, loss and EMA 0.996 -> 1: the method's defaults (jax_ssl/methods/ijepa.py)
      augment=base.augment(crop_scale=(0.3, 1.0), flip_prob=0.0, jitter_prob=0.0),
      global_batch_size=512,
      optimizer=base.optimizer("adamw", 1e-3, weight_decay=0.04, weight_decay_end=0.4,
                               lr_scaling="none"),
      epochs=300, warmup_epochs=40,
      heads=dict(predictor_dim=192, predictor_depth=6, predictor_num_heads=6),
      runlocal_heads=dict(predictor_dim=16, predictor_depth=1, predictor_num_heads=2))
  # The base file's model is the ResNet-18 (a small ResNet under runlocal): a ViT instead.
  config.model = ml_collections.ConfigDict(dict(
      backbone="vit_small", patch_size=4, cls_token=False))
  if runlocal:
    config.model.update(dict(backbone="vit_tiny", depth=2, dim=32, num_heads=2))
  return config
