r"""SwAV, ResNet-50 on ImageNet-1k: the official 800-epoch recipe.

  python -m jax_ssl.train --config experiments/imagenet/swav_resnet50.py --workdir gs://.../swav_in1k

Data: needs `imagenet2012` prepared as array_record in the TFDS data dir (`tfds build
imagenet2012 --file_format array_record --manual_dir DIR` where the ILSVRC2012 tars are, then
copy it into --config.dataset.data_dir); nothing downloads at run time. Images are resized on
the host to `dataset.image_size` squared, then cropped on device. `:runlocal` shrinks it to a
few steps of a small model.

Recipe (Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020, and github.com/facebookresearch/swav scripts/swav_800ep_pretrain.sh):
batch 4096, LARS (LARC, eta 0.001) at base lr 4.8 for batch 4096 (0.3 x B/256), weight
decay 1e-6, 10 warmup epochs then cosine, 800 epochs; projector 2048 -> 2048 -> 128, 3000
prototypes frozen for the first 313 iterations, temperature 0.1, Sinkhorn-Knopp epsilon 0.05
with 3 iterations, no queue at this batch size; multi-crop: 2 x 224 px (area 0.14-1) and
6 x 96 px (area 0.05-0.14); colour jitter 0.8/0.8/0.8/0.2 with p = 0.8, grayscale 0.2, blur
p = 0.5.

Reported: 75.3% ImageNet linear top-1 (swav README, SwAV 800 epochs, batch 4096, 2x224 + 6x96). Not reproduced here: ImageNet pretraining needs accelerators.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.

Where this config cannot express the recipe exactly:
 * No queue here, as the 4096-batch recipe. With one (`queue_size` > 0, the official recipe
   at batch 256): main_swav.py creates it empty at `epoch_queue_starts` and uses it once
   full; ours is written from step 0 and used from `queue_start_step` with only its filled
   rows in Sinkhorn (the same codes once it is full).
 * Warmup starts at lr 0.3 and the cosine ends at 0.0048 in the script; ours go from and to 0.
 * LARC there does not exclude biases and BatchNorm parameters; our LARS does.
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
  config = base.make_config(
      runlocal=runlocal,
      method="swav",
      augment=base.augment(crop_scale=(0.14, 1.0)),
      global_batch_size=4096,
      optimizer=base.optimizer("lars", 0.3, weight_decay=1e-6),
      epochs=800, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32, num_prototypes=64))
  config.augment.local_crops.update(num=6, crop_scale=(0.05, 0.14))
  if runlocal:
    config.augment.local_crops.num = 2
  return config
