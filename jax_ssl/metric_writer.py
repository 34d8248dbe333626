"""The run's metrics log: DIR/metrics.jsonl (one JSON object per logged step) and TensorBoard
events in DIR/tensorboard, in a local folder or a bucket (fs.py); only process 0 writes."""

from __future__ import annotations

import json

from absl import logging
import jax

from jax_ssl import fs


class MetricWriter:
  """metrics.jsonl + TensorBoard; only process 0 writes (a local folder or a URL: fs.py)."""

  def __init__(self, workdir: str, resume_step: int):
    self.active = jax.process_index() == 0
    self.path = fs.join(workdir, "metrics.jsonl")
    self.last_elapsed = 0.0
    self.tensorboard = None
    if not self.active:
      return
    # A killed run may have logged steps after its last checkpoint: drop them, the resumed
    # run logs them again.
    kept = []
    if fs.path(self.path).exists():
      with fs.path(self.path).open() as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= resume_step]
      if kept:
        self.last_elapsed = json.loads(kept[-1]).get("train_seconds", 0.0)
    self._log = fs.AppendableText(self.path, kept)
    self.tensorboard = fs.summary_writer(fs.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.active:
      return
    self._log.append(json.dumps({"step": step, **metrics}) + "\n")
    for key, value in metrics.items():
      self.tensorboard.add_scalar(key, value, step)

  def close(self) -> None:
    if self.tensorboard is not None:
      try:
        self.tensorboard.close()
      except OSError as e:  # full disk: the error that stopped the run is the one to report
        logging.warning("TensorBoard events not flushed: %s", e)
