r"""MoCo v3, ResNet-50 on ImageNet-1k: the official recipe.

  python -m jax_ssl.train --config experiments/imagenet/moco_v3_resnet50.py --workdir gs://.../moco_v3_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (`tfds build
imagenet2012 --file_format array_record --manual_dir DIR` where the ILSVRC2012 tars are, then
copy it into --config.dataset.data_dir); nothing downloads at run time. Images are resized on
the host to `dataset.image_size` squared, then cropped on device. `:runlocal` shrinks it to a
few steps of a small model.

Recipe (Chen, Xie and He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021, and
github.com/facebookresearch/moco-v3 CONFIG.md "ResNet-50, 300-epoch pre-training", read at commit c349e6e):
batch 4096, LARS (eta 0.001, momentum 0.9; 1-D parameters excluded) at lr 0.3 x B/256
(`--lr=.3`), weight decay 1e-6, 10 warmup epochs then cosine, 300 epochs; projector 2048 ->
4096 -> 256 and predictor 256 -> 4096 -> 256 (2 layers each for ResNet); temperature 1.0 and
the loss scaled by 2 tau; momentum 0.99 -> 1 on a cosine (`--moco-m-cos`); views: random
resized crop 0.2-1 (`--crop-min=.2`), BYOL's asymmetric blur 1.0 / 0.1 and solarization
0.0 / 0.2.

Reported: 72.8% ImageNet linear top-1 at 300 epochs (moco-v3 README, "ResNet-50, linear
classification"; 68.9 at 100 and 74.6 at 1000 epochs). Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * The official MLPs end with a BatchNorm without affine parameters (projector) and the
   hidden layers of both use BatchNorm; ours end with a Linear layer.
 * No per-channel mean/std normalisation of the inputs; bilinear, not bicubic, crops; blur
   with SimCLR's kernel (23 taps at 224 px) rather than PIL's; the host resizes to 256 px
   before the crop, so crops never see the full original image.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _imagenet_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def moco_v3_config(arg: str | None, *, temperature: float, crop_scale: tuple[float, float],
                   projector_num_layers: int, optimizer: dict, warmup_epochs: int,
                   **model_args) -> ml_collections.ConfigDict:
  """MoCo v3's recipe shared by its ImageNet files (batch 4096, 300 epochs, head widths,
  momentum, BYOL's augmentations); temperature, crops, projector depth, optimizer, warmup
  and the backbone (`model`, `runlocal_model` of `base.make_config`) vary."""
  runlocal = "runlocal" in base.switches(arg)
  return base.make_config(
      runlocal=runlocal,
      method="moco_v3",
      method_args={"temperature": temperature},
      augment=base.augment(crop_scale=crop_scale, brightness=0.4, contrast=0.4, saturation=0.2,
                           hue=0.1, blur_prob=1.0,
                           view_overrides=({}, {"blur_prob": 0.1, "solarize_prob": 0.2})),
      heads=dict(projector_num_layers=projector_num_layers),
      global_batch_size=4096, optimizer=optimizer, epochs=300, warmup_epochs=warmup_epochs,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32,
                          predictor_hidden_dim=32),
      **model_args)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return moco_v3_config(arg, temperature=1.0, crop_scale=(0.2, 1.0), projector_num_layers=2,
                        optimizer=base.optimizer("lars", 0.3, weight_decay=1e-6),
                        warmup_epochs=10)
