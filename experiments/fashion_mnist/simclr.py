r"""SimCLR on Fashion-MNIST with a small residual CNN: the embedded default (main job).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/simclr.py --workdir runs/simclr_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/simclr.py:runlocal`.

Expected result (measured; README.md "Results" is generated from that run's results.json,
kept in results/simclr_fmnist/): knn_top1 0.8440, linear_top1 0.9037, linear_1pct_top1
0.8287 (std 0.0099), 14.6 min of training and 1.5 of evaluation alone on a 2-vCPU AMD EPYC
after issue 25 (views stacked per example, the asynchronous loop); the run before it:
knn_top1 0.8396, linear_top1 0.9088, linear_1pct_top1 0.8234, 14.1 min of training (2400 steps, ~730 img/s, 0.35 s/step, the convolutions on the
library's CPU kernels, `jax_ssl/kernels`, BatchNorm fused, `jax_ssl/models/batch_norm.py`,
XLA's temporaries kept in the heap, `jax_ssl/host_memory.py`) and 1.6 min of evaluation,
alone on a 2-vCPU AMD EPYC (AVX-512); raw pixels 0.7913 / 0.8469 / 0.7780, the 512-d
random-init encoder 0.7739 / 0.8497 / 0.7538. `:runlocal` keeps 2 views and the plain
encoder (the smoke test and the test suite's tiny configs).

Recipe: SimCLR's augmentations minus colour (grayscale images) with jitter strength 0.8,
crops of 20-100% of the area, plus multi-crop (Caron et al. 2020, as solo-learn's SimCLR):
4 local crops of 12x12 from 5-40% of the area, every crop of an image a positive of the
others (`losses.nt_xent_multi_view`); temperature 0.1, a 2048-wide projector, a 512-d
representation (`model.final_features=512`: a final 1x1 conv + BN + ReLU before pooling),
AdamW at 4e-3, batch 256, 2400 steps.

How it got here (seed 0, 1% = mean of 3 subsets; each a whole run):
- 2 views, 800 steps, 128-d encoder (Xeon, 10.9 min of training): 0.831 / 0.8708 / 0.8086;
  the same at 512-d (Xeon, 10.0 min; raw pixels there 0.7913 / 0.8475 / 0.7779): 0.8315 /
  0.8958 / 0.8114, the previous default; a 3-layer projector (SimCLRv2's) and 900 steps
  (Xeon, 13.0 + 2.9 min): 0.8337 / 0.8959 / 0.8128.
- On the AMD EPYC (0.52 s per 2-view step): 1600 steps (13.8 + 1.6 min) 0.8401 / 0.8982 /
  0.8146; batch 512 for 800 steps with sqrt lr scaling (13.8 + 1.6 min) 0.8385 / 0.8991 /
  0.8114; multi-crop, 1000 steps (14.4 + 1.6 min, 0.86 s/step on XLA's convolutions) 0.8366
  / 0.9017 / 0.8208: the only one past the 0.82 1% target of issue 8 at the same training
  cost (~14 min).
- The CPU convolution kernels made the multi-crop step 0.86 -> 0.51 s in training, and the
  same 14.4 min ran 1700 steps: 0.8441 / 0.9045 / 0.8220.
- Fused BatchNorm and reusing freed host memory made that step 0.51 -> 0.35 s in training,
  and 14.1 min now run 2400 steps (this default): 0.8396 / 0.9088 / 0.8234 (kNN 0.0045
  lower, linear and 1% higher).
- Issue 24 asks for the main job within 15 min on the Intel Xeon too, where these 2400 steps
  took 1424 s + 135 s of evaluation (26 min; 0.8413 / 0.9043 / 0.8264). This recipe at 1200
  steps (`--config.total_steps=1200`; EPYC, cores shared, user CPU 15.3 min in all) gave
  0.8389 / 0.9045 / 0.8193 (std 0.0057): 1% below the 0.82 asked, so the default stays.
  Two more recipes of about half the cost (2026-12-06, EPYC, cores shared with test suites):
  6 local crops for 1000 steps (`--config.augment.local_crops.num=6
  --config.total_steps=1000`) 0.8372 / 0.9025 / 0.8177 (std 0.0107); batch 128 for 2200
  steps with 200 warmup steps (`--config.global_batch_size=128 --config.total_steps=2200
  --config.optimizer.warmup_steps=200`, the learning rate scaled linearly to 2e-3) 0.8404 /
  0.9002 / 0.8174 (std 0.0100). Every half-cost recipe tried lands at 0.817-0.819 on 1%.
- The 2-view recipe was chosen by a sweep of 32 variants of 800-850 steps on one H200
  (numbers in the foundation issue's closing note): turning colour jitter off cost 0.05
  linear top-1, jitter 0.8 instead of 0.4 with the wider projector and lr 4e-3 gained ~0.01,
  1600 steps instead of 800 gained ~0.001.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "simclr"
  config.method_args = ml_collections.ConfigDict({"temperature": 0.1})
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=2048, projector_output_dim=128, projector_num_layers=2))
  config.model.final_features = 512
  config.augment.local_crops.update(num=4, output_size=12, crop_scale=(0.05, 0.4))
  config.total_steps = 2400
  if runlocal:
    config.model.final_features = 0
    config.augment.local_crops.num = 0
    config.total_steps = 20
    config.heads.projector_hidden_dim = 64
    config.heads.projector_output_dim = 32
  return config
