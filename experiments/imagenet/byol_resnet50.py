r"""BYOL, ResNet-50 on ImageNet-1k: the paper's recipe.

  python -m jax_ssl.train --config experiments/imagenet/byol_resnet50.py --workdir gs://.../byol_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (`tfds build
imagenet2012 --file_format array_record --manual_dir DIR` where the ILSVRC2012 tars are, then
copy it into --config.dataset.data_dir); nothing downloads at run time. Images are resized on
the host to `dataset.image_size` squared, then cropped on device. `:runlocal` shrinks it to a
few steps of a small model.

Recipe (Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, Section 3.3 and Appendix B/C):
batch 4096, LARS (eta 0.001, momentum 0.9; biases and BatchNorm parameters excluded from
adaptation and decay) at lr 0.2 x B/256, weight decay 1.5e-6, 10 warmup epochs then cosine,
1000 epochs; projector 2048 -> 4096 -> 256, predictor 256 -> 4096 -> 256; target momentum
0.996 -> 1 on a cosine; asymmetric views: colour jitter 0.4/0.4/0.2/0.1 with p = 0.8,
grayscale 0.2, blur p = 1.0 / 0.1, solarization p = 0.0 / 0.2 (`augment.view_overrides`).

Reported: 74.3% ImageNet linear top-1 (Table 1 of the paper, ResNet-50, 1000 epochs). Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * The loss in the paper is summed over the two symmetric terms, as here.
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
      method="byol",
      augment=base.augment(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_prob=1.0,
                           view_overrides=({}, {"blur_prob": 0.1, "solarize_prob": 0.2})),
      global_batch_size=4096,
      optimizer=base.optimizer("lars", 0.2, weight_decay=1.5e-6),
      epochs=1000, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32,
                          predictor_hidden_dim=32))
