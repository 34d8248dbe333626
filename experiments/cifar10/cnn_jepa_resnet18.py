r"""CNN-JEPA, ResNet-18 (CIFAR stem) on CIFAR-10: the reference's recipe on a 4x4 grid.

  python -m jax_ssl.train --config experiments/cifar10/cnn_jepa_resnet18.py --workdir runs/cnn_jepa_c10

Data and `:runlocal`: see `_cifar10_base.py`.

Recipe: the reference's (kaland313/CNN-JEPA at 4511962, pretrain/configs/ijepacnn_imagenet100.yaml
and train_ijepacnn.py; experiments/imagenet/cnn_jepa_resnet50.py lists it) moved to
CIFAR-10: masks on the ResNet-18's 4x4 output grid (CIFAR stem, stride 8), "mixed" masks
(multi-block with probability 0.75: 4 target blocks of scale 0.15-0.2, i.e. 2 to 4 cells,
aspect 0.75-1.5; else random masking of 60%, 6 of 16 cells kept), the sparse context
encoder, a 3-layer depthwise-separable 3x3 predictor, smooth L1 on channel-normalised
features; EMA target 0.996 -> 1 on a cosine; AdamW at lr 0.01 (0.005 x 512/256), weight
decay 0.01, batch 512, 10 warmup epochs, 200 epochs; view: random resized crop 0.3-1 to 32
px and a flip, no colour (lightly's IJEPATransform).

Reported: no CIFAR-10 number (the reference's code lists CIFAR-10 with 32 px inputs but
its ResNets have the ImageNet stem, a 1x1 grid there; the paper reports ImageNet-100:
73.3% linear top-1, experiments/imagenet/cnn_jepa_resnet50.py).

Expected result: not measured (200 epochs of ResNet-18 need an accelerator).

Where this config cannot express the recipe exactly:
 * What every CIFAR-10 file here shares (warmup, input normalisation, precision): see
   `_cifar10_base.py`.
 * The CIFAR stem (stride 8, a 4x4 grid) instead of the reference's ImageNet stem; the
   statistics of every BatchNorm span the global batch (the reference's are per GPU).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  # masks, predictor, loss and momentum: the method's defaults (jax_ssl/methods/cnn_jepa.py)
  return base.make_config(
      runlocal=runlocal,
      method="cnn_jepa",
      augment=base.augment(crop_scale=(0.3, 1.0), jitter_prob=0.0, grayscale_prob=0.0),
      global_batch_size=512,
      optimizer=base.optimizer("adamw", 0.005, weight_decay=0.01),
      epochs=200, warmup_epochs=10)
