r"""Jigsaw, ResNet-50 on ImageNet-1k: Noroozi & Favaro's puzzle, Kolesnikov et al.'s training.

  python -m jax_ssl.train --config experiments/imagenet/jigsaw_resnet50.py --workdir gs://.../jigsaw_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (TFDS builds it from
the manually downloaded ILSVRC2012 tars: `tfds build imagenet2012 --file_format array_record
--manual_dir DIR` where they are, then copy it into --config.dataset.data_dir); nothing
downloads at run time. Images are resized on the host to `dataset.image_size` = 256 squared
(shorter side, centre crop), then cropped on device. `:runlocal` shrinks it to a few steps of
a small model.

The puzzle (Noroozi & Favaro, ECCV 2016): a random 225 px crop cut into a 3x3 grid of 75 px
cells, a 64 px tile at a random position inside each cell, 1000 maximal-Hamming
permutations. Translated to our tiles (tile = cell - gap - jitter, placed gap // 2 + U[0,
jitter] px into its cell; cell = output_size // 3): output_size 225 gives 75 px cells, and
gap 0, jitter 11 gives 64 px tiles anywhere in their cell, exactly the paper's sampling
(neighbouring tiles 0-22 px apart, 11 on average). The 225 px crop is a random crop at scale
1 of the 256 px image: crop area fixed at (225/256)^2 with aspect ratio 1. Each tile is
normalised on its own and goes through the ResNet-50 (64 px -> 2x2 map); the classifier sees
the 9 tile features side by side (9 x 2048 -> 4096 -> 1000).

Training (AlexNet in the paper; the ResNet-50 recipe is Kolesnikov, Zhai & Beyer, CVPR 2019,
github.com/google/revisiting-self-supervised config/jigsaw/imagenet.sh, trainer.py and
self_supervision/patch_utils.py, read at commit b530e3b): batch 128 images, SGD momentum 0.9
at lr 0.1 x B/256, weight decay 1e-4 (the code's default), 5 warmup epochs, 35 epochs;
grayscale with p = 0.66 (mean of RGB there, luma here), no flip or colour jitter; head
fc7-fc8 style (4096 hidden units with BatchNorm and ReLU). Their own puzzle differs from the
paper's: 255 px crops of images stretched to 292 px, 85 px cells, 64 px tiles, 100
permutations; to train that one, pass --config.dataset.image_size=292
--config.augment.output_size=255 --config.augment.crop_scale="(0.7626,0.7626)"
--config.method_args.jitter=21 --config.method_args.num_permutations=100.

Reported: number not verified here. We could not read Kolesnikov et al.'s or Goyal et al.
2019's ResNet-50 tables from a source available to us, so no ImageNet linear top-1 is
claimed. Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * Architecture: Kolesnikov et al.'s config trains a 2x wider ResNet-50 v1
   (`--filters_factor 8`) that downsamples tiles less (stride-1 first convolution, no stride
   in the last stage) and whose logits layer gives a 1000-d embedding per tile; here a
   standard ResNet-50 (ImageNet stem) and its pooled 2048-d features go straight to the head,
   which has no dropout (theirs: 0.5).
 * Labels: their code scores every image under 8 permutations drawn per batch (one backbone
   pass per tile, shared); ours draws one permutation per image per step.
 * Learning rate: cosine decay to 0 instead of the step schedule (x0.1 at epochs 15 and 25).
 * Crops are resampled bilinearly at sub-pixel offsets (a slight blur at scale 1).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)

_CROP = 225  # Noroozi & Favaro's puzzle crop: 3 x 75 px cells


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="jigsaw",
      # 75 px cells, 64 px tiles (75 - 0 - 11), each anywhere in its cell.
      method_args={"gap": 0, "jitter": 11, "num_permutations": 1000},
      augment=base.augment(output_size=_CROP,
                           crop_scale=base.fixed_crop_scale(base.IMAGE_SIZE, _CROP),
                           crop_ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                           grayscale_prob=0.66, blur_prob=0.0),
      global_batch_size=128,
      optimizer=base.optimizer("sgd", 0.1, weight_decay=1e-4),
      epochs=35, warmup_epochs=5,
      host_crops=False,  # the puzzle's crop is defined on the image_size square
      runlocal_heads=dict(classifier_hidden_dim=32))
  if runlocal:  # 56 px crops of 64 px images: 18 px cells, 16 px tiles
    config.augment.crop_scale = base.fixed_crop_scale(base.RUNLOCAL_IMAGE_SIZE,
                                                      base.RUNLOCAL_OUTPUT_SIZE)
    config.method_args.update(jitter=2, num_permutations=10)
  return config
