r"""Rotation prediction (RotNet), ResNet-50 on ImageNet-1k: Kolesnikov et al.'s recipe.

  python -m jax_ssl.train --config experiments/imagenet/rotation_resnet50.py --workdir gs://.../rotation_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (TFDS builds it from
the manually downloaded ILSVRC2012 tars: `tfds build imagenet2012 --file_format array_record
--manual_dir DIR` where they are, then copy it into --config.dataset.data_dir); nothing
downloads at run time. Images are resized on the host to `dataset.image_size` squared, then
cropped on device (random resized crop to 224). `:runlocal` shrinks it to a few steps of a
small model.

Recipe: Gidaris et al. (ICLR 2018) trained AlexNet on ImageNet; the ResNet-50 recipe is
Kolesnikov, Zhai & Beyer, "Revisiting Self-Supervised Visual Representation Learning", CVPR
2019, as released in github.com/google/revisiting-self-supervised (config/rotation/
imagenet.sh, trainer.py, preprocess.py; read at commit b530e3b): batch 64 images, each in
all 4 rotations (256 images per step), SGD momentum 0.9 at lr 0.1 x B/256, weight decay
1e-4 (the code's default), 5 warmup epochs, 35 epochs; the network's logits layer is the
classifier (a linear head on the pooled features: one layer, `classifier_hidden_dim` is
unused); views: Inception crop (area 0.05-1, aspect 3/4-4/3) resized to 224, flip 0.5,
and TF-slim's fast colour distortion (brightness +-32/255, saturation 0.5-1.5, always).
The repository says its configs are for 8 TPU cores and give results close to the paper's,
which used more cores (so the paper's batch may be larger).

Reported: number not verified here. We could not read Kolesnikov et al.'s tables (nor Goyal
et al. 2019's) from a source available to us, so no ImageNet linear top-1 is claimed. Not
reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * Architecture: the released config trains a RevNet-50 with 4x wider layers
   (`--architecture revnet50 --filters_factor 16`); this file trains a standard ResNet-50.
 * Learning rate: cosine decay to 0 instead of the step schedule (x0.1 at epochs 15 and 25).
 * Colour: additive brightness +-32/255 is approximated by a multiplicative factor 0.75-1.25
   (the same change at mid-grey); our colour ops run in a random order, slim's fast mode in a
   fixed one (brightness, then saturation).
 * Inputs are in [0, 1], not [-1, 1]; the crop box is sampled directly (no
   min_object_covered / 100 attempts of TF's sample_distorted_bounding_box).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  return base.make_config(
      runlocal=runlocal,
      method="rotation",
      augment=base.augment(crop_scale=(0.05, 1.0), jitter_prob=1.0, brightness=0.25,
                           contrast=0.0, saturation=0.5, hue=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=64,
      optimizer=base.optimizer("sgd", 0.1, weight_decay=1e-4),
      epochs=35, warmup_epochs=5,
      runlocal_heads=dict(classifier_hidden_dim=32))
