r"""TiCo, ResNet-50 on ImageNet-1k: lightly's benchmark recipe.

  python -m jax_ssl.train --config experiments/imagenet/tico_resnet50.py --workdir gs://.../tico_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (`tfds build
imagenet2012 --file_format array_record --manual_dir DIR` where the ILSVRC2012 tars are, then
copy it into --config.dataset.data_dir); nothing downloads at run time. Images are resized on
the host to `dataset.image_size` squared, then cropped on device. `:runlocal` shrinks it to a
few steps of a small model.

Recipe (Zhu et al., "TiCo", 2022, arXiv:2206.10698, Algorithm 1, as lightly runs it:
lightly-ai/lightly benchmarks/imagenet/resnet50/tico.py, `TiCoLoss`, `TiCoProjectionHead`,
`TiCoTransform`): beta 0.9, rho 8; projector 2048 -> 4096 -> 256 (Linear-BN-ReLU-Linear); an
EMA target of the backbone and projector with momentum 0.99 -> 1 on a cosine; the loss one
direction (online view 1 against target view 2); batch 256, LARS (eta 0.001, momentum 0.9;
biases and BatchNorm parameters excluded from adaptation and decay) at lr 0.2 x B/256, weight
decay 1.5e-6, 10 warmup epochs then cosine, 100 epochs; BYOL's asymmetric views (lightly's
`TiCoTransform` is BYOL's): colour jitter 0.4/0.4/0.2/0.1 with p = 0.8, grayscale 0.2, blur
p = 1.0 / 0.1, solarisation p = 0.0 / 0.2 (`augment.view_overrides`).

Reported by lightly (README's ImageNet table, ResNet-50, 100 epochs, "batch 256"): linear
top-1 49.7%, fine-tune 72.7%, kNN 26.6%. That run (2024-01-07) predates lightly-ai/lightly#1484
(2024-01-30), which put the current batch's B behind a stop-gradient as here, and its
checkpoint (epoch 99, step 250200: 2502 steps per epoch) implies 512 images per step. Not
reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * lightly's cosine decays to 0.001 x the peak lr; ours decays to 0.
 * sayannag/TiCo-pytorch and lightly before #1484, following the paper's pseudocode,
   differentiate through the current batch's B; here, as lightly now does, B is a constant
   of the step (`losses.tico_covariance_update`).
 * No per-channel mean/std normalisation of the inputs; bilinear, not bicubic, crops; blur
   with SimCLR's kernel (23 taps at 224 px) rather than torchvision's; the host resizes to
   256 px before the crop, so crops never see the full original image.
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
      method="tico",
      # method_args: beta 0.9, rho 8, base_momentum 0.99, the method's defaults
      augment=base.augment(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_prob=1.0,
                           view_overrides=({}, {"blur_prob": 0.1, "solarize_prob": 0.2})),
      # heads: 2048 -> 4096 -> 256, the method's default Heads
      global_batch_size=256,
      optimizer=base.optimizer("lars", 0.2, weight_decay=1.5e-6),
      epochs=100, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32))
