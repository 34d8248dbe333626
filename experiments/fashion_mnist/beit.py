r"""BEiT on Fashion-MNIST with a small ViT (4x4 patches: 7x7 tokens) and an in-project tokenizer.

Two commands, in this order (2-core CPU, offline): first the VQ tokenizer whose code ids
BEiT predicts, then BEiT itself, which reads that run's config.json and latest checkpoint:

  python -m jax_ssl.train --config experiments/fashion_mnist/vq_tokenizer.py --workdir runs/vq_tokenizer_fmnist
  python -m jax_ssl.train --config experiments/fashion_mnist/beit.py --workdir runs/beit_fmnist

(`--config.method_args.tokenizer_workdir=DIR` points BEiT at another tokenizer run.)
Laptop smoke test (seconds): the same two commands with `:runlocal` after each config path;
the smoke-test BEiT reads runs/vq_tokenizer_fmnist_runlocal, so give the tokenizer's smoke
test that --workdir.

Recipe: BEiT's (Bao et al. 2022) scaled down to the 2-core budget, on the encoder of
experiments/fashion_mnist/simmim.py (ViT-Tiny-like: width 128, 6 blocks, 4 heads, CLS token,
sin-cos positions; BEiT's relative position bias and layer scale are not implemented):
blockwise masking of 40% of the 49 patches (20) in blocks of at least 4 patches (BEiT's 16
of 196), masked patch embeddings replaced by a learned mask token, a linear head over the
tokenizer's 512 codes at the masked positions, cross-entropy; one view (random resized crop
0.67-1 + flip, no colour); AdamW (0.9, 0.999), weight decay 0.05, lr 1e-3 (BEiT's 1.5e-3 at
batch 2048 is for 800 epochs), batch 256, 600 steps (the encoder costs what SimMIM's does, plus the
small tokenizer's forward pass).
The tokenizer differs from the paper's: BEiT uses DALL-E's discrete VAE (8192 codes, trained
on 400M images, fed a 112 px copy of the view), which cannot be downloaded here; ours is a
small VQ-VAE trained on Fashion-MNIST itself (experiments/fashion_mnist/vq_tokenizer.py).
Evaluation: the frozen protocols, then fine-tuning (`masked_modeling_config` in
_fashion_mnist_base.py: 300 steps of batch 128, from the pretrained encoder and from its
random initialisation). Not tuned.

Expected result (`results/beit_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.7631, linear 0.8257, 1% 0.7416 (std 0.0129), fine-tuned 0.7847; raw pixels 0.7913 / 0.8475 /
0.7780. Run history: `results/beit_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.masked_modeling_config(runlocal)
  config.method = "beit"
  config.method_args = ml_collections.ConfigDict(dict(
      tokenizer_workdir="runs/vq_tokenizer_fmnist",
      min_block_patches=4))  # BEiT's 16 of 196 patches, scaled to 49
  config.augment.update(crop_scale=(0.67, 1.0), jitter_prob=0.0)  # crop + flip, no colour
  config.total_steps = 600
  if runlocal:
    config.total_steps = 20
    config.method_args.tokenizer_workdir = "runs/vq_tokenizer_fmnist_runlocal"
  return config
