r"""SimCLR, ResNet-18 (CIFAR stem) on CIFAR-10: solo-learn's recipe.

  python -m jax_ssl.train --config experiments/cifar10/simclr_resnet18.py --workdir runs/simclr_c10

Needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded; nothing downloads at run time).
Recipe (solo-learn scripts/pretrain/cifar/simclr.yaml with augmentations/symmetric.yaml):
LARS, batch 256, lr 0.4, weight decay 1e-4, LARS eta 0.02, temperature 0.2, projector 2048
-> 256, 1000 epochs, 10 warmup epochs, no LARS adaptation nor decay on biases and norms;
views: random resized crop 0.08-1, colour jitter 0.8/0.8/0.8/0.2 with p = 0.8, grayscale
0.2, blur p = 0.5, flip 0.5 (at 32 px our blur kernel has 3 taps). solo-learn reports 90.74% online linear
top-1 on CIFAR-10 for this recipe (not reproduced here: 1000 epochs need an accelerator).
`:runlocal` shrinks it to a few steps of a small model.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.
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
      method="simclr",
      augment=base.augment(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
                           blur_prob=0.5),
      heads=dict(projector_output_dim=256),
      global_batch_size=256,
      optimizer=base.optimizer("lars", 0.4, weight_decay=1e-4, trust_coefficient=0.02),
      epochs=1000, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32))
