r"""Rotation prediction (RotNet), ResNet-18 (CIFAR stem) on CIFAR-10: RotNet's CIFAR-10 recipe.

  python -m jax_ssl.train --config experiments/cifar10/rotation_resnet18.py --workdir runs/rotation_c10

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

Recipe (Gidaris, Singh & Komodakis, ICLR 2018; their code github.com/gidariss/
FeatureLearningRotNet, config/CIFAR10_RotNet_NIN4blocks.py and dataloader.py): batch 128
images, each in all 4 rotations (512 images per step), SGD momentum 0.9 at lr 0.1 (0.2 x
B/256), weight decay 5e-4, no warmup, 200 epochs; a linear classifier on the pooled
features (one layer: `classifier_hidden_dim` is unused); views: random 32 px crop of the
4-px zero-padded image and a horizontal flip, no colour augmentation.

No published number for this setup: RotNet's CIFAR-10 results are for Network-In-Network
encoders evaluated with (non-)linear classifiers on intermediate blocks, not a ResNet-18
with a linear probe on its pooled features, so none is claimed. Not reproduced here (it
needs an accelerator).

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * The encoder is ResNet-18 (CIFAR stem), not RotNet's NIN with 4 conv blocks.
 * Learning rate: cosine decay to 0 instead of the step schedule (x0.2 at epochs 60, 120 and
   160); plain momentum instead of Nesterov.
 * Crop: pad-by-4-and-crop (translations of up to 4 px, zero borders) is not in our
   augment; the closest is a random square crop of 77-100% of the area (28-32 px) resized to
   32 px: similar translations, up to 14% zoom, no black borders.
 * No per-channel mean/std normalisation of the inputs (RotNet normalises with CIFAR-10
   statistics).
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
      method="rotation",
      augment=base.augment(crop_scale=((28 / 32) ** 2, 1.0), crop_ratio=(1.0, 1.0),
                           jitter_prob=0.0, grayscale_prob=0.0),
      heads=dict(classifier_hidden_dim=512),
      global_batch_size=128,
      optimizer=base.optimizer("sgd", 0.2, weight_decay=5e-4),
      epochs=200, warmup_epochs=0,
      runlocal_heads=dict(classifier_hidden_dim=32))
