r"""SimCLR, ResNet-50 on ImageNet-1k: the paper's recipe.

  python -m jax_ssl.train --config experiments/imagenet/simclr_resnet50.py --workdir gs://.../simclr_in1k

Needs `imagenet2012` prepared as array_record in the TFDS data dir. Images are resized on the
host to `dataset.image_size` squared, then cropped on device (random resized crop to 224).
Recipe (Chen et al. 2020, Appendix B.9): LARS, batch 4096, lr 0.3 x B/256 = 4.8, weight
decay 1e-6, temperature 0.1, 2-layer projector 2048 -> 128, 1000 epochs with 10 warmup
epochs, colour jitter strength 1.0, blur p=0.5. Paper: 69.3% linear top-1 (Table 6).

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.
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
      method="simclr",
      method_args={"temperature": 0.1},
      augment=base.augment(),
      global_batch_size=4096,
      optimizer=base.optimizer("lars", 0.3, weight_decay=1e-6),
      epochs=1000, warmup_epochs=10,
      runlocal_heads=dict(projector_hidden_dim=64, projector_output_dim=32))
