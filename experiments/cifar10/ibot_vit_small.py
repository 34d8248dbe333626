r"""iBOT, ViT-S/4 on CIFAR-10: iBOT's ViT-S recipe on 32 px images.

  python -m jax_ssl.train --config experiments/cifar10/ibot_vit_small.py --workdir runs/ibot_c10

Data and `:runlocal`: see `_cifar10_base.py`.

Recipe: no iBOT reference trains on CIFAR-10 (its paper transfers ImageNet models to it), so
this is the ImageNet ViT-S/16 command of github.com/bytedance/ibot's README (`--teacher_temp
0.07 --shared_head true --out_dim 8192 --local_crops_number 10 --global_crops_scale 0.25 1
--local_crops_scale 0.05 0.25 --pred_ratio 0 0.3 --pred_ratio_var 0 0.2`, main_ibot.py's
other defaults: student 0.1, teacher 0.04 -> 0.07 over 30 epochs for both token kinds,
centers 0.9, head 2048 -> 256 -> 8192 frozen for the first epoch, teacher momentum 0.996 -> 1,
AdamW at 5e-4 x B/256 after 10 warmup epochs, weight decay 0.04 -> 0.4) at CIFAR's scale:
ViT-S with 4x4 patches (8x8 tokens of the 32 px crops, CLS feature), 16 px local crops (4x4
tokens), blocks of >= 4 patches (iBOT's (side // 3)^2 at 8x8), batch 256, 800 epochs
(iBOT's ViT-S length). No reference number; not measured.

Expected result: not measured (pretraining at this scale needs an accelerator).

Where this config cannot express the recipe exactly: the iBOT ImageNet file's list
(experiments/imagenet/ibot_vit_base.py); the ViT-S recipe's `norm_last_layer false` (ours
always weight-normalises the prototypes); what every CIFAR-10 file shares
(`_cifar10_base.py`).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  steps_per_epoch = base.TRAIN_EXAMPLES // 256
  config = base.make_config(
      runlocal=runlocal,
      method="ibot",
      method_args=dict(teacher_temp=0.07, warmup_teacher_temp_steps=30 * steps_per_epoch,
                       freeze_last_layer_steps=steps_per_epoch, min_block_patches=4),
      augment=base.augment(crop_scale=(0.25, 1.0), view_overrides=({}, {"solarize_prob": 0.2})),
      global_batch_size=256,
      optimizer=base.optimizer("adamw", 5e-4, weight_decay=0.04, weight_decay_end=0.4),
      epochs=800, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, bottleneck_dim=32, num_prototypes=64))
  config.model.update(dict(backbone="vit_small", pool="cls", pos_embedding="learned"))
  config.augment.local_crops.update(num=10, crop_scale=(0.05, 0.25))
  if runlocal:
    config.model.update(dict(depth=2, dim=32, num_heads=2))
    config.augment.local_crops.num = 2
    config.method_args.update(warmup_teacher_temp_steps=2, freeze_last_layer_steps=1)
  # DINO's eval_linear.py for a ViT-S: the CLS tokens of the last 4 blocks concatenated
  # (kNN reads the output); runlocal's 2-block ViT: both
  config.eval.linear_blocks = min(4, config.model.get("depth") or 12)
  return config
