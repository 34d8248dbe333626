r"""MAE, ViT-Large/16 on ImageNet-1k: the paper's 1600-epoch recipe, with FSDP and bfloat16.

  python -m jax_ssl.train --config experiments/imagenet/mae_vit_large.py --workdir gs://.../mae_vit_l_in1k

Data: as experiments/imagenet/mae_vit_base.py (`imagenet2012` as array_record in the TFDS
data dir; nothing downloads at run time). `:runlocal` shrinks it to a few steps of a 2-block
ViT with 8 px patches on 56 px crops (still under FSDP: one device holds the whole state).

Recipe (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, appendix
A.1, Table 8, and the official code's PRETRAIN.md / models_mae.py): the ViT-B recipe of
mae_vit_base.py with the ViT-L/16 encoder (1024 wide, 24 blocks, 16 heads, MLP 4096: timm's
vit_large_patch16_224), CLS token and fixed 2-D sin-cos position embeddings; 75% random
masking; decoder 512 wide, 8 blocks, 16 heads; MSE on the masked patches against per-patch
normalised pixels (norm_pix_loss); AdamW with betas (0.9, 0.95), weight decay 0.05, base
lr 1.5e-4 x B/256 = 2.4e-3 at batch 4096, 40 warmup epochs then cosine, 1600 epochs; views:
random resized crop (area 0.2-1) to 224 + horizontal flip, no colour.

Memory: the encoder and decoder hold 329.2M float32 parameters (303.1M in the encoder:
timm's 304.3M less its classifier and learned position table; tests/models/test_vit.py), 3.95 GB
with AdamW's two moments, on every chip if replicated. `sharding="fsdp"` splits every
parameter and moment above 64 KiB over the devices (big_vision's rule, jax_ssl/sharding.py):
498 MB per chip on 8 chips, 66 MB on 64 (computed from the shardings), leaving a 16 GiB
chip's memory to the activations of its share of the batch.
`--config.mesh_shape='(H,-1)'` keeps FSDP within each of H groups (e.g. hosts or slices) and
data-parallel across them; `--config.model.remat=True` recomputes block activations in the
backward pass when the per-chip batch does not fit.

Reported (ViT-L, 1600 epochs, norm_pix): 85.9% ImageNet top-1 after fine-tuning (the official
PT/GPU reproduction: 85.95, 85.87, 85.76, 85.88 over 4 seeds; FINETUNE.md), 75.8% linear
probe (paper, TF/TPU). Not reproduced here: ImageNet pretraining needs accelerators.

Fine-tuning (`eval.finetune`): MAE's ViT-L recipe (FINETUNE.md: 50 epochs of batch 1024,
base lr 1e-3, layer decay 0.75, weight decay 0.05, label smoothing 0.1, 5 warmup epochs),
without its drop path 0.2, mixup, cutmix and RandErase (not implemented here).

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly: as mae_vit_base.py (bfloat16 compute
with float32 parameters, not fp16; inputs in [0, 1]; bilinear crops; our linear probe).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)
import mae_vit_base  # noqa: E402  (the ViT-B/16 file: the same pretraining recipe)

FINETUNE_BATCH = 1024


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = mae_vit_base.get_config(arg)
  config.sharding = "fsdp"
  if "runlocal" not in base.switches(arg):
    config.model.backbone = "vit_large"
    finetune_epoch = base.TRAIN_EXAMPLES // FINETUNE_BATCH
    config.eval.finetune.update(steps=50 * finetune_epoch, batch_size=FINETUNE_BATCH,
                                base_learning_rate=1e-3, layer_decay=0.75,
                                warmup_steps=5 * finetune_epoch)
  return config
