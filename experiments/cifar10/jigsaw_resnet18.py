r"""Jigsaw puzzles, ResNet-18 (CIFAR stem) on CIFAR-10: a recipe derived from the ImageNet ones.

  python -m jax_ssl.train --config experiments/cifar10/jigsaw_resnet18.py --workdir runs/jigsaw_c10

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

No published CIFAR-10 recipe or number exists for jigsaw puzzles that we could find (Noroozi
& Favaro, ECCV 2016, and Kolesnikov et al., CVPR 2019, train on ImageNet), so none is
claimed; this run is not reproduced here (it needs an accelerator).

Recipe, scaled down from the ImageNet ones (experiments/imagenet/jigsaw_resnet50.py):
 * Tiles: a 3x3 grid of the 32 px view, i.e. 10 px cells (32 // 3); each tile is 8 px
   (cell - gap - jitter), placed 0-1 px into its cell (gap 1: neighbouring tiles at least
   1 px apart; jitter 1). Noroozi & Favaro's 64 px tiles in 75 px cells keep 85% of the
   cell; 8/10 keeps 80%. Each tile is normalised on its own; every tile goes through the
   ResNet-18, whose 8 px input ends as a 1x1 map.
 * 100 maximal-Hamming permutations (the count Kolesnikov et al.'s code uses; Noroozi &
   Favaro's 1000 is a lot of classes for 8 px tiles), classifier 9 x 512 -> 4096 -> 100
   (Linear-BN-ReLU, Linear; Kolesnikov et al.'s fc7-fc8 head, without its dropout).
 * Views: a random square crop of 77-100% of the image area resized to 32 px, grayscale with
   p = 0.66 (Kolesnikov et al.'s against chromatic shortcuts), no flip, no colour jitter.
 * SGD momentum 0.9 at lr 0.1 x B/256 with weight decay 5e-4 (RotNet's CIFAR-10 decay),
   batch 256, 5 warmup epochs (Kolesnikov et al.) then cosine, 200 epochs (RotNet's CIFAR
   length).

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
  config = base.make_config(
      runlocal=runlocal,
      method="jigsaw",
      augment=base.augment(crop_scale=((28 / 32) ** 2, 1.0), crop_ratio=(1.0, 1.0),
                           flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.66),
      global_batch_size=256,
      optimizer=base.optimizer("sgd", 0.1, weight_decay=5e-4),
      epochs=200, warmup_epochs=5,
      runlocal_heads=dict(classifier_hidden_dim=32))
  if runlocal:
    config.method_args.num_permutations = 10
  return config
