r"""VICReg, ResNet-18 (CIFAR stem) on CIFAR-10: solo-learn's recipe.

  python -m jax_ssl.train --config experiments/cifar10/vicreg_resnet18.py --workdir runs/vicreg_c10

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

Recipe (solo-learn, github.com/vturrisi/solo-learn, scripts/pretrain/cifar/vicreg.yaml,
solo/methods/vicreg.py and solo/losses/vicreg.py; read at commit 9187ea3): batch 256, LARS
(eta 0.02, momentum 0.9, biases and norms excluded from adaptation and decay) at lr
0.3 x B/256, weight decay 1e-4, 10 warmup epochs then cosine, 1000 epochs; expander
512 -> 2048 -> 2048 -> 2048 (Linear-BN-ReLU twice, then Linear); loss weights sim 25, var 25,
cov 1; both views: random resized crop 0.2-1 to 32 px, colour jitter 0.4/0.4/0.2/0.1 with
p = 0.8, grayscale 0.2, solarization 0.1, flip 0.5, no blur (the views are symmetric, so
`config.augment` expresses them exactly).

Loss weights: solo-learn's variance term is the SUM of the two views' hinges
(mean relu(1 - std(z1)) + mean relu(1 - std(z2))), where the paper and `losses.vicreg`
average them; solo-learn's var_loss_weight 25 is therefore variance_weight = 50 here (the
same loss). The invariance (MSE) and covariance (sum over both views of the squared
off-diagonal covariances / D) terms are the same in both.

Reported: 92.07% top-1 (Acc@1, ResNet-18, 1000 epochs) in the CIFAR-10 table of solo-learn's
README ("Results" -> "CIFAR-10", https://github.com/vturrisi/solo-learn#cifar-10; the table
does not say whether online or offline linear evaluation). Not reproduced here: 1000 epochs
need an accelerator.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
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
      method="vicreg",
      # solo-learn's var_loss_weight 25 on the sum of the two views' hinges = 50 on their mean.
      method_args={"variance_weight": 50.0},
      augment=base.augment(crop_scale=(0.2, 1.0), solarize_prob=0.1),
      heads=dict(projector_hidden_dim=2048, projector_output_dim=2048),
      global_batch_size=256,
      optimizer=base.optimizer("lars", 0.3, weight_decay=1e-4, trust_coefficient=0.02),
      epochs=1000, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=64))
