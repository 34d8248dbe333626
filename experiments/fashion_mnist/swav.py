r"""SwAV on Fashion-MNIST with a small residual CNN and multi-crop (2 global + 2 local views).

Command (2-core CPU, offline; builds the dataset from Debian's dataset-fashion-mnist):

  python -m jax_ssl.train --config experiments/fashion_mnist/swav.py --workdir runs/swav_fmnist

Laptop smoke test (seconds): `--config experiments/fashion_mnist/swav.py:runlocal`.

Recipe: the SimCLR experiment's data, small encoder and AdamW at 4e-3; SwAV's multi-crop
(global crops of area 0.14-1 at 28 px, 2 local crops of area 0.05-0.14 at 12 px), a 2-layer
2048 -> 128 projector, 128 prototypes frozen for the first 50 steps, temperature 0.1,
Sinkhorn-Knopp with epsilon 0.05 and 3 iterations over the batch of 256 (no queue: with
fewer prototypes than samples a batch already spreads over every prototype), 1100 steps
(760 beat raw pixels on 1% by less than the subsets' std).
With `queue_size` > 0 the queue
(per global view) is written from step 0 and used from `queue_start_step`, only its filled
rows entering Sinkhorn (jax_ssl/methods/swav.py; main_swav.py starts its queue at
`epoch_queue_starts` and uses it once full).

Expected result (`results/swav_fmnist/results.json`, seed 0; 1% = mean of 3 subsets): knn
0.8091, linear 0.8603, 1% 0.7946 (std 0.0097); raw pixels 0.7913 / 0.8472 / 0.7780, the
random-init encoder 0.7683 / 0.8210 / 0.7303. Run history: `results/swav_fmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _fashion_mnist_base.switches(arg)
  config = _fashion_mnist_base.base_config(runlocal)
  config.method = "swav"
  config.method_args = ml_collections.ConfigDict(dict(
      queue_start_step=100,  # queue_size > 0: from this step
      freeze_prototypes_steps=50))
  config.heads = ml_collections.ConfigDict(dict(num_prototypes=128))
  config.augment.crop_scale = (0.14, 1.0)
  config.augment.local_crops.update(num=2, crop_scale=(0.05, 0.14))
  config.total_steps = 1100
  if runlocal:
    config.total_steps = 20
    config.method_args.update(queue_size=128, queue_start_step=10, freeze_prototypes_steps=5)
    config.heads.update(projector_hidden_dim=64, projector_output_dim=32, num_prototypes=32)
  return config
