r"""VQ tokenizer on Fashion-MNIST: the visual tokens BEiT predicts (one code per 4x4 patch).

Command (2-core CPU, offline), the first of BEiT's two (experiments/fashion_mnist/beit.py):

  python -m jax_ssl.train --config experiments/fashion_mnist/vq_tokenizer.py --workdir runs/vq_tokenizer_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/vq_tokenizer.py:runlocal
--workdir runs/vq_tokenizer_fmnist_runlocal` (where BEiT's smoke test reads its tokenizer).

Recipe: a VQ-VAE (jax_ssl/methods/vq_tokenizer.py, models/vq.py) whose conv encoder
downsamples 28x28 views by 4 (the ViT's patch size) to a 7x7 grid of codes from a codebook
of 512 x 32 (cosine lookup), width 32, with a mirror decoder; loss = pixel MSE + codebook
loss + 0.25 x commitment; AdamW at 1e-3, batch 256, 1000 steps. One mildly augmented view (crops of 80-100% of the
area, flips, no colour jitter): the tokenizer should describe the images BEiT's ViT sees,
not learn invariances. No evaluation after training (it is a tokenizer, not an encoder to
probe); its metrics.jsonl logs `reconstruction` (MSE on [0, 1] pixels), `perplexity` and
`codes_used` of each logged batch.

Expected result (`results/vq_tokenizer_fmnist/metrics.jsonl`, step 1000): reconstruction
0.0099, perplexity 25.7, 19% of the 512 codes used per batch. Run history:
`results/vq_tokenizer_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "vq_tokenizer"
  config.model.update(backbone="vq_encoder", width=32)
  config.heads = ml_collections.ConfigDict(dict(num_codes=512, decoder_width=32))
  config.augment.update(crop_scale=(0.8, 1.0), jitter_prob=0.0)
  config.optimizer.base_learning_rate = 1e-3
  config.total_steps = 1000
  config.evaluate = False  # a tokenizer for BEiT, not an encoder to evaluate
  if runlocal:
    config.total_steps = 20
    config.model.width = 16
    config.heads.update(num_codes=64, code_dim=8, decoder_width=16)
  return config
