r"""Barlow Twins, ResNet-18 (CIFAR stem) on CIFAR-10: solo-learn's recipe.

  python -m jax_ssl.train --config experiments/cifar10/barlow_twins_resnet18.py --workdir runs/barlow_twins_c10

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

Recipe (solo-learn, github.com/vturrisi/solo-learn, scripts/pretrain/cifar/barlow.yaml with
augmentations/asymmetric.yaml, and solo/methods/barlow_twins.py; read at commit 9187ea3):
batch 256, LARS (eta 0.02, momentum 0.9, biases and norms excluded from adaptation and
decay) at lr 0.3 x B/256, weight decay 1e-4, 10 warmup epochs then cosine, 1000 epochs;
projector 512 -> 2048 -> 2048 -> 2048 (Linear-BN-ReLU twice, then Linear); off-diagonal
weight lambda = 0.0051 (solo-learn's default `lamb`); views: random resized crop 0.08-1 to
32 px, colour jitter 0.4/0.4/0.2/0.1 with p = 0.8, grayscale 0.2, flip 0.5, no blur;
solarization p = 0.0 on the first view and 0.2 on the second (`augment.view_overrides`).

Reported: 92.10% top-1 (Acc@1, ResNet-18, 1000 epochs) in the CIFAR-10 table of solo-learn's
README ("Results" -> "CIFAR-10", https://github.com/vturrisi/solo-learn#cifar-10; the table
does not say whether online or offline linear evaluation). Not reproduced here: 1000 epochs
need an accelerator.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * solo-learn multiplies the loss by `scale_loss` = 0.1; our loss has no scale. Under LARS
   this is not a no-op: it changes the balance of gradient and weight decay in the trust
   ratio, and the step of biases and norms (not LARS-adapted) is 10x larger here.
 * LARS `clip_lr: True` (each layer's adapted lr capped at the global lr) is not applied:
   optax's LARS has no clipping.
 * Warmup starts from lr 0, not solo-learn's `warmup_start_lr` 3e-5; decay ends at 0.
 * No per-channel mean/std normalisation of the inputs (solo-learn normalises with CIFAR-10
   statistics); crops are resampled bilinearly, not bicubically.
 * solo-learn trains in 16-bit mixed precision with its online linear classifier alongside.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  return base.make_config(
      runlocal=runlocal,
      method="barlow_twins",
      method_args={"off_diagonal_weight": 0.0051},
      augment=base.augment(view_overrides=({}, {"solarize_prob": 0.2})),
      heads=dict(projector_hidden_dim=2048, projector_output_dim=2048),
      global_batch_size=256,
      optimizer=base.optimizer("lars", 0.3, weight_decay=1e-4, trust_coefficient=0.02),
      epochs=1000, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=64))
