r"""MoCo v2, ResNet-50 on ImageNet-1k: the paper's recipe.

  python -m jax_ssl.train --config experiments/imagenet/moco_v2_resnet50.py --workdir gs://.../moco_v2_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (`tfds build
imagenet2012 --file_format array_record --manual_dir DIR` where the ILSVRC2012 tars are, then
copy it into --config.dataset.data_dir); nothing downloads at run time. Images are resized on
the host to `dataset.image_size` squared, then cropped on device. `:runlocal` shrinks it to a
few steps of a small model.

Recipe (Chen, Fan, Girshick and He, "Improved Baselines with Momentum Contrastive Learning",
arXiv:2003.04297, and facebookresearch/moco main_moco.py with `--mlp --moco-t 0.2 --aug-plus --cos`):
batch 256, SGD (momentum 0.9) at lr 0.03 x B/256, weight decay 1e-4, cosine, 800 epochs;
a queue of K = 65536 keys, temperature 0.2, momentum encoder 0.999; MLP head 2048 -> 2048 ->
128; views: random resized crop 0.2-1, colour jitter 0.4/0.4/0.4/0.1 with p = 0.8, grayscale
0.2, blur p = 0.5, flip.

Reported: 71.1% ImageNet linear top-1 at 800 epochs (67.5 at 200 epochs), Table 2 of the paper. Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * The official head has no BatchNorm (Linear-ReLU-Linear); ours has BatchNorm in the hidden
   layer. The official loss is one-directional (q of view 1 against k of view 2); ours is
   symmetrised over the two views (as solo-learn's MoCo V2+), with one queue of K keys per
   view as there (q1 meets the queue of view-2 keys, q2 that of view-1 keys), so each queue
   still takes one key per image per step and spans K images, as the official one.
 * The official momentum is a constant 0.999; ours rises from 0.999 to 1 on a cosine.
 * No warmup in the paper; ours warms up for 1 epoch.
 * No per-channel mean/std normalisation of the inputs; bilinear, not bicubic, crops; blur
   with SimCLR's kernel (23 taps at 224 px) rather than PIL's; the host resizes to 256 px
   before the crop, so crops never see the full original image.
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
      method="moco_v2",
      augment=base.augment(crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                           hue=0.1),
      global_batch_size=256,
      optimizer=base.optimizer("sgd", 0.03, weight_decay=1e-4),
      epochs=800, warmup_epochs=1,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32))
