r"""VQ tokenizer on ImageNet-1k: the visual tokens of experiments/imagenet/beit_vit_base.py.

  python -m jax_ssl.train --config experiments/imagenet/vq_tokenizer.py --workdir runs/vq_tokenizer_in1k

Needs `imagenet2012` prepared as array_record in the TFDS data dir. Not a paper's recipe:
BEiT uses DALL-E's discrete VAE (8192 codes, trained on 400M images), which cannot be
downloaded here, so BEiT reads this in-project VQ-VAE instead (jax_ssl/methods/vq_tokenizer.py):
a conv encoder that downsamples 224 px views by 16 (the ViT-B/16 patch) to 14x14 codes from
a codebook of 8192 x 32 (DALL-E's vocabulary size; cosine lookup), width 64, a mirror
decoder; pixel MSE + codebook loss + 0.25 x commitment; one mildly augmented view (random
resized crop 0.35-1 + flip); AdamW lr 1e-4 x B/256 at batch 1024, 100 epochs, 5 warmup.
Not run; logs reconstruction, perplexity and codes_used. No evaluation after training.

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
  config = base.make_config(
      runlocal=runlocal,
      method="vq_tokenizer",
      augment=base.augment(crop_scale=(0.35, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           blur_prob=0.0),
      global_batch_size=1024,
      optimizer=base.optimizer("adamw", 1e-4, weight_decay=1e-4),
      epochs=100, warmup_epochs=5,
      runlocal_heads=dict(num_codes=64, code_dim=8, decoder_width=8),
      model=dict(backbone="vq_encoder"),
      # 56 px smoke-test views: downsampled by 8 to the 7x7 grid of the ViTs' smoke tests.
      runlocal_model=dict(backbone="vq_encoder", width=8, patch_size=8))
  config.evaluate = False  # a tokenizer, not an encoder to probe
  return config
