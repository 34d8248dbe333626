r"""DINO on Fashion-MNIST with a small residual CNN and multi-crop (2 global + 2 local views).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/dino.py --workdir runs/dino_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/dino.py:runlocal`.

`:vit_tiny` (or `:runlocal,vit_tiny`) trains ViT-Tiny instead of the CNN (4x4 patches: 7x7
tokens for the 28 px global crops, 3x3 for the 12 px local crops, whose position embeddings
are interpolated over the same extent, as DINO does); the rest of the recipe is the CNN's,
untuned and not measured for the ViT. `--config.model.backbone=vit_tiny` alone is refused:
the CNN recipe's `model.final_features=512` exists for the ResNets only.

Recipe: the SimCLR experiment's data, small encoder and AdamW at 4e-3, with a 512-d
representation (`model.final_features=512`: a final 1x1 conv + BN + ReLU before pooling);
DINO's multi-crop (global crops of area 0.4-1 at 28 px, 2 local crops of area 0.05-0.4 at
12 px), a 3-layer head 1024 -> bottleneck 128 with BatchNorm (as solo-learn's ResNet
recipes) and 256 weight-normalised prototypes frozen for the first 100 steps, teacher
temperature 0.04 -> 0.07 over 400 steps, student 0.1, center momentum 0.9, EMA teacher
0.99 -> 1 on a cosine (solo-learn's short-run value; the paper's 0.996 is for 100+ ImageNet
epochs), batch 128, 1300 steps. Evaluated as DINO evaluates: the EMA teacher (`eval.encoder`
"method"), with the BatchNorm statistics of its own forward passes.

Expected result (`results/dino_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.7988, linear 0.8673, 1% 0.7696 (std 0.0128); raw pixels 0.7913 / 0.8469 / 0.7780. Run
history: `results/dino_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  switches = _fashion_mnist_base.switches(arg, "vit_tiny")
  runlocal = "runlocal" in switches
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "dino"
  config.method_args = ml_collections.ConfigDict(dict(
      teacher_temp=0.07, warmup_teacher_temp_steps=400, freeze_last_layer_steps=100,
      base_momentum=0.99))  # solo-learn's short-run value; the paper's 0.996 is for 100+ epochs
  # solo-learn's ResNet head (BatchNorm), narrower; 256 prototypes
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=1024, bottleneck_dim=128, num_prototypes=256, use_bn=True))
  config.model.final_features = 512  # a 512-d representation
  config.augment.crop_scale = (0.4, 1.0)  # DINO's global crops
  config.augment.local_crops.num = 2  # 12 px, area 0.05-0.4
  config.global_batch_size = 128
  config.total_steps = 1300
  if runlocal:
    config.global_batch_size = 64
    config.total_steps = 20
    config.method_args.update(warmup_teacher_temp_steps=10, freeze_last_layer_steps=5)
    config.heads.update(projector_hidden_dim=64, bottleneck_dim=32, num_prototypes=64)
  if "vit_tiny" in switches:  # ViT-Tiny for the CNN (its 512-d final conv is ResNet-only)
    config.model.update(backbone="vit_tiny", final_features=0)
    if runlocal:
      config.model.update(depth=2, dim=32, num_heads=2)
  return config
