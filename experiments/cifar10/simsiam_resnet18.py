r"""SimSiam, ResNet-18 (CIFAR stem) on CIFAR-10: solo-learn's recipe.

  python -m jax_ssl.train --config experiments/cifar10/simsiam_resnet18.py --workdir runs/simsiam_c10

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

Recipe (solo-learn, github.com/vturrisi/solo-learn, scripts/pretrain/cifar/simsiam.yaml with
augmentations/symmetric_weak.yaml, and solo/methods/simsiam.py; read at commit 9187ea3):
batch 256, SGD (momentum 0.9) at lr 0.5 x B/256, weight decay 1e-5, 10 warmup epochs then
cosine, 1000 epochs; projector 512 -> 2048 -> 2048 -> 2048, predictor 2048 -> 512 -> 2048;
both views: random resized crop 0.08-1 to 32 px, colour jitter 0.4/0.4/0.4/0.1 with p = 0.8,
grayscale 0.2, Gaussian blur p = 0.5 (sigma 0.1-2), flip 0.5. (simsiam.yaml also sets a
`temperature`, which SimSiam does not use.)

Reported: 90.51% top-1 (Acc@1, ResNet-18, 1000 epochs) in the CIFAR-10 table of solo-learn's
README ("Results" -> "CIFAR-10", https://github.com/vturrisi/solo-learn#cifar-10; the table
does not say whether online or offline linear evaluation). Not reproduced here: 1000 epochs
need an accelerator.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * solo-learn keeps the predictor's lr fixed at the initial lr (`static_lr`, as the SimSiam
   paper); here one schedule (warmup + cosine) drives every parameter.
 * solo-learn's projector ends in BatchNorm without affine (its last Linear has no bias);
   our MLPHead's last layer is a plain Linear (see jax_ssl/methods/simsiam.py).
 * solo-learn's SGD decays every parameter (its `exclude_bias_n_norm_wd` defaults to False);
   our optimizer never decays biases and norm parameters.
 * Blur: solo-learn uses PIL's GaussianBlur(radius = sigma) on the 32 px image; our kernel
   is SimCLR's 10% of the view side, i.e. 3 taps at 32 px, so sigmas above ~1 blur less.
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
      method="simsiam",
      augment=base.augment(saturation=0.4, blur_prob=0.5),
      global_batch_size=256,
      optimizer=base.optimizer("sgd", 0.5, weight_decay=1e-5),
      epochs=1000, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=64,
                          predictor_hidden_dim=16))
