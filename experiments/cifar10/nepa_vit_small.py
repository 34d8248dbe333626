r"""NEPA, ViT-Small on CIFAR-10 (4x4 patches: 8x8 tokens on 32x32 images).

  python -m jax_ssl.train --config experiments/cifar10/nepa_vit_small.py --workdir runs/nepa_cifar10

Data: `cifar10` as array_record in the TFDS data dir (`_cifar10_base.py`). `:runlocal`
shrinks it to a few steps of a 2-block ViT.

Recipe: the paper (Xu et al. 2025) reports ImageNet only; this is its ImageNet recipe
(experiments/imagenet/nepa_vit_base.py; github.com/SihanXU/nepa scripts/pretrain/nepa_b.sh)
on ViT-Small (384 wide, 12 blocks, 6 heads) with 4 px patches: CLS token, causal attention,
2-D RoPE (base 100) without absolute positions, QK-norm, LayerScale 1e-5, SwiGLU; the
negative cosine similarity of each output with the next patch's input embedding; AdamW,
betas (0.9, 0.95), weight decay 0.05, lr 3e-4 x B/256 at batch 512, 2.5% warmup (20 of 800
epochs) then cosine; random resized crop (area 0.08-1) + flip, no colour. Fine-tuning
(bidirectional, as the reference's sft configs): the reference's AdamW recipe scaled to
CIFAR-10, lr 1.5e-3 x B/256 at batch 512, weight decay 0.05, layer-wise decay 0.65, label
smoothing 0.1, 100 epochs with 20% warmup.

Expected result: not measured (no reference number on CIFAR-10; pretraining at this
length needs an accelerator). Deviations from the reference code: those listed in
experiments/imagenet/nepa_vit_base.py (no RoPE coordinate augmentation, QK-norm with a
learned scale, LayerNorm eps 1e-6, Xavier init, inputs in [0, 1], our fine-tuning without
mixup/cutmix/RandAugment/drop-path/EMA).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)

NEPA_VIT = dict(causal=True, rope=True, pos_embedding="none", qk_norm=True, mlp="swiglu",
                layer_scale=1e-5)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="nepa",
      augment=base.augment(crop_scale=(0.08, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=512,
      optimizer=base.optimizer("adamw", 3e-4, weight_decay=0.05, beta2=0.95),
      epochs=800, warmup_epochs=20)
  config.model.update(dict(backbone="vit_small", **NEPA_VIT))
  config.eval.protocols = "finetune,lowlabel-1%"
  steps_per_epoch = base.TRAIN_EXAMPLES // 512
  config.eval.finetune.update(
      steps=100 * steps_per_epoch, base_learning_rate=1.5e-3, weight_decay=0.05,
      warmup_steps=20 * steps_per_epoch, label_smoothing=0.1, layer_decay=0.65,
      optimizer="adamw", low_label=True)
  if runlocal:
    config.model.update(dict(backbone="vit_tiny", depth=2, dim=32, num_heads=2))
    config.eval.finetune.update(steps=4, batch_size=32, warmup_steps=1)
  return config
