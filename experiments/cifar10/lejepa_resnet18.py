r"""LeJEPA, ResNet-18 (CIFAR stem) on CIFAR-10: a recipe derived from the reference code.

  python -m jax_ssl.train --config experiments/cifar10/lejepa_resnet18.py --workdir runs/lejepa_c10

Data: needs `cifar10` prepared as array_record in the TFDS data dir (`tfds build cifar10
--file_format array_record` where it can be downloaded, then copy it into
--config.dataset.data_dir); nothing downloads at run time. `:runlocal` shrinks it to a few
steps of a small model.

No published CIFAR-10 pretraining recipe or number exists for LeJEPA that we could find
(Balestriero & LeCun 2025, arXiv:2511.08544, and github.com/rbalestr-lab/lejepa report
CIFAR-10 only as a transfer target of ImageNet-1k models), so none is claimed; this run is
not reproduced here (it needs an accelerator).

Recipe, from the repository's minimal example for a small dataset (MINIMAL.md: ViT-S/8 on
Imagenette at 128 px, launched with lamb=0.02, V=4, proj_dim=16, lr=2e-3, bs=256,
epochs=800; read at commit eddffdd): 4 views per image, lambda = 0.02, 256 SIGReg
directions per step, projector 512 -> 2048 -> 2048 -> 16 (torchvision MLP with BatchNorm:
Linear-BN-ReLU twice, then Linear), AdamW at lr 2e-3 for batch 256, 800 epochs, one warmup
epoch then cosine; weight decay 5e-4, the README's value for ResNets (the example's 5e-2 is
its ViT value); views: random resized crop 0.08-1, colour jitter 0.8/0.8/0.8/0.2 with
p = 0.8, grayscale 0.2, solarization 0.2, flip 0.5.

Where this differs from that reference:
 * No blur: the example blurs with p = 0.5 at 128 px; at 32 px (a 3-tap kernel here) we drop
   it, as solo-learn's and SimCLR's CIFAR recipes do.
 * ResNet-18 with a CIFAR stem instead of ViT-S/8; no multi-crop (the example uses none
   either: all 4 views are the same size, which is also all `config.augment` can express).
 * The example's cosine ends at lr 1e-3 and its warmup starts at 1% of the lr; ours runs
   from 0 to 0. It normalises inputs with ImageNet mean/std and trains in bf16; we do neither.

Expected result: not measured (pretraining at this scale needs accelerators); the reference's
number, where one is reported above, is the target.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cifar10_base as base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in base.switches(arg)
  config = base.make_config(
      runlocal=runlocal,
      method="lejepa",
      augment=base.augment(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
                           solarize_prob=0.2),
      heads=dict(projector_output_dim=16),
      global_batch_size=256,
      optimizer=base.optimizer("adamw", 2e-3, weight_decay=5e-4),
      epochs=800, warmup_epochs=1,
      runlocal_heads=dict(projector_hidden_dim=64))
  if runlocal:
    config.method_args.num_slices = 32
  return config
