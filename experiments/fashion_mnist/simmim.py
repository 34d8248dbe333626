r"""SimMIM on Fashion-MNIST with a small ViT (4x4 patches: 7x7 tokens on 28x28 images).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simmim.py --workdir runs/simmim_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simmim.py:runlocal`.

Recipe: SimMIM's (Xie et al. 2022) scaled down to the 2-core budget of the SimCLR default,
on the encoder of experiments/fashion_mnist/mae.py (width 128, 6 blocks, 4 heads, CLS token,
sin-cos positions): 60% of the 49 patches masked in contiguous blocks (BEiT's blockwise
masking, `mask_strategy="block"`: the paper's 32 px random mask units do not divide the 7x7
token grid, and its finding is that larger mask units make the better pretext task), a
linear pixel decoder, L1 on the masked pixels, one view (random resized crop 0.67-1 + flip,
the paper's), AdamW (0.9, 0.999), weight decay 0.05, lr 1e-3, batch 256, 500 steps (~2.1
epochs) with 100 warmup. Evaluation: the frozen protocols, then fine-tuning
(`masked_modeling_config` in _fashion_mnist_base.py: 300 steps of batch 128, from the
pretrained encoder and from its random initialisation).

Expected result (`results/simmim_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.7223, linear 0.8172, 1% 0.7160 (std 0.0046), fine-tuned 0.7286; raw pixels 0.7913 / 0.8475 /
0.7780. Run history: `results/simmim_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.masked_modeling_config(runlocal)
  config.method = "simmim"
  # block masking of single patches (SimMIM's 32 px units are 2x2 of its 16 px patches;
  # here a patch is already 4 px of 28)
  config.method_args = ml_collections.ConfigDict(dict(mask_unit=1, mask_strategy="block"))
  config.augment.update(crop_scale=(0.67, 1.0), jitter_prob=0.0)  # crop + flip, no colour
  config.total_steps = 500
  if runlocal:
    config.total_steps = 20
  return config
