r"""NEPA on Fashion-MNIST with a small causal ViT (4x4 patches: 7x7 tokens on 28x28 images).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/nepa.py --workdir runs/nepa_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/nepa.py:runlocal`.

Recipe: NEPA's (Xu et al. 2025; github.com/SihanXU/nepa, scripts/pretrain/nepa_b.sh and
configs/pretrain/nepa-base-patch14-224) scaled down to the 2-core budget: the masked-modelling
ViT of `_fashion_mnist_base.masked_modeling_config` (width 128, 6 blocks, 4 heads, CLS
token) made NEPA's: causal attention, 2-D RoPE (base 100) and no absolute position
embedding, QK-norm, LayerScale 1e-5, SwiGLU (the paper's; the released configs use GELU,
`use_gated_mlp: false`, and reproduce the paper's numbers with it). One view: random resized
crop (area 0.2-1, the reference: 0.08-1) + flip, no colour. AdamW with the reference's betas
(0.9, 0.95) and weight decay 0.05 at lr 1e-3 (the reference: 3e-4 x B/256 for 1600 epochs at
batch 4096; a short run needs more), batch 256, 500 steps (~2.1 epochs) with 50 warmup:
20 steps ran at 68-95 images/s on the 2 cores shared with other jobs (load average 6.5),
so alone about 1 s per step, under 12 minutes for the 500.

Judged as the paper judges it, by fine-tuning: all labels and 1% of them (eval.protocols
"lowlabel-1%,finetune" with eval.finetune.low_label; the frozen 1% linear probe comes
along), each against the same ViT fine-tuned from its random initialisation
(`eval.baselines`). Fine-tuning attends bidirectionally, as the reference's sft configs
(`is_causal: false`).

Deviations from the reference code: no RoPE coordinate augmentation (its
`pos_embed_rescale=2.0`: patch coordinates scaled by a log-uniform factor in [1/2, 2] per
pretraining step); QK-norm LayerNorms with a learned scale, eps 1e-6 (the reference's ViT-B
pretraining: no affine, eps 1e-12); LayerNorm eps 1e-6 everywhere (1e-12); a linear patch
embedding with Xavier init and Xavier-initialised linear layers (truncated normal 0.02);
fine-tuning is our `eval.finetune` (no mixup/cutmix/RandAugment/random erasing, no
drop-path, no EMA, patch embedding not frozen, parameter-free BatchNorm + linear head on the
mean of the normalised patch tokens instead of the reference's mean then LayerNorm).

Expected result (`results/nepa_fmnist/results.json`, seed 0, 7.7 min of training on a 2-vCPU
AMD EPYC): fine-tune top-1 0.7446 against its random-init ViT's 0.7347; fine-tuned on 1% of
the labels 0.7211 ± 0.0107 against 0.7194 ± 0.0165 (level). Run history:
`results/nepa_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.masked_modeling_config(runlocal)
  config.method = "nepa"
  config.augment.jitter_prob = 0.0  # crop (area 0.2-1) + flip, no colour
  # NEPA's ViT: causal, RoPE without absolute positions, QK-norm, SwiGLU, LayerScale 1e-5
  config.model.update(dict(causal=True, rope=True, pos_embedding="none", qk_norm=True,
                           mlp="swiglu", layer_scale=1e-5))
  config.optimizer.beta2 = 0.95  # the reference's betas (0.9, 0.95)
  # judged by fine-tuning, on all labels and on 1% of them
  config.eval.protocols = "lowlabel-1%,finetune"
  config.eval.finetune.low_label = True
  config.total_steps = 500
  config.optimizer.warmup_steps = 50
  if runlocal:
    config.total_steps = 20
    config.optimizer.warmup_steps = 5
  return config
