r"""Frame-order verification on Moving Fashion-MNIST with the small 3-D CNN.

Command (2-core CPU, offline; builds the dataset on first use):

  python -m jax_ssl.train --config experiments/moving_fashion_mnist/temporal_order.py --workdir runs/temporal_order_mfmnist

Laptop smoke test (seconds): `--config experiments/moving_fashion_mnist/temporal_order.py:runlocal`.
Other frame-order tasks on the same clips: `--config.method_args.negatives=swap` (or
`mixed`: harder negatives, one adjacent pair exchanged), `--config.method_args.task=sort
--config.clips.num_frames=8` (OPN/VCOP sequence sorting in 4 chunks), `task=arrow` (arrow of
time; at chance here: a bouncing garment moves as plausibly backwards as forwards).

Recipe: the tutorial's temporal pretext task after Misra et al., "Shuffle and Learn" (ECCV
2016) (`method=temporal_pretext`, task "order"): one clip of 6 consecutive frames per video
(the playback-speed file's clips at speed 1), its frames shuffled into a random non-identity
order with probability 1/2, a linear classifier on the pooled 3-D CNN features says whether
they were; cross-entropy. The base file's optimizer (AdamW, lr 2e-3, weight decay 1e-4), 600
steps of batch 64, one crop / flip / brightness-contrast jitter per clip. Not tuned.

Why 6 consecutive frames: on the base's 8 frames at stride 2 the random-init 3-D CNN already
reads the motion class well (linear 0.50), and no frame-order task beat it there in 600 steps
(any shuffle 0.49, one swapped pair, a mix of both and sorting 4 chunks all below; numbers in
`results/temporal_order_mfmnist/notes.md`). On consecutive frames the motion between two
frames is small, the random init reads less of it, and telling a shuffle apart needs it.

Deviations from the reference: Shuffle and Learn classifies 3-frame tuples (negatives: the
middle frame out of place, tuples taken from high-motion windows) with a siamese 2-D
CaffeNet; here the whole clip goes through a 3-D CNN, any non-identity permutation of its
frames is a negative, and half the clips are negatives.

Expected result (`results/temporal_order_mfmnist/results.json`, seed 0, 1.5 min of training
on a 2-vCPU AMD EPYC): linear top-1 garment 0.2286 / motion 0.4028 (raw pixels 0.3617 /
0.2270, random init 0.3095 / 0.3188, on these clips): above both baselines on the motion
labels, below both on the garment. Run history: `results/temporal_order_mfmnist/notes.md`.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _moving_fashion_mnist_base  # noqa: E402  (sibling file; experiment files are loaded by path)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = "runlocal" in _moving_fashion_mnist_base.switches(arg)
  config = _moving_fashion_mnist_base.base_config(runlocal)
  config.method = "temporal_pretext"
  config.method_args = ml_collections.ConfigDict(dict(task="order"))
  config.clips.update(num_frames=6, stride=1)
  if runlocal:
    config.clips.num_frames = 4
  return config
