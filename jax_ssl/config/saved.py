"""Saved runs keep loading: a DIR/config.json of any earlier version as a typed Experiment.

Keys that runs were saved without take the value those runs effectively used, which is not
always today's default (e.g. runs before `eval.encoder` evaluated the online parameters,
while the default is now the method's choice); renamed keys are converted. Then
`Experiment.from_config` types and checks it like any config.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Mapping

from jax_ssl import fs
from jax_ssl.config.schema import Experiment

# Keys added after some runs were saved, with the value those runs effectively used, so an
# older DIR/config.json still evaluates (python -m jax_ssl.evaluate) and resumes.
_SAVED_DEFAULTS: dict[str, Any] = {
    "grad_accum_mode": "micro_batch",  # the only gradient accumulation there was
    "online_probe": False,
    "sharding": "replicated",  # every run before FSDP replicated its state
    "mesh_shape": (),
    "fsdp_min_bytes": 64 * 2**10,
    "model.final_features": 0,
    "optimizer.trust_coefficient": 0.001,  # LARS only; every experiment file had 0.001
    "optimizer.beta2": 0.999,
    "eval.knn_k_sweep": (10, 20, 100, 200),
    "eval.report": False,
    # Fine-tuning did not exist: the Fashion-MNIST defaults (experiments/fashion_mnist).
    "eval.finetune": dict(steps=500, batch_size=256, base_learning_rate=1e-3,
                          weight_decay=0.05, warmup_steps=50, label_smoothing=0.1,
                          layer_decay=0.75, optimizer="adamw", crop_scale=(0.8, 1.0)),
    "eval.finetune.low_label": True,  # fine-tuning ran on every low-label subset chosen
    "eval.encoder": "online",  # every run was evaluated with the online parameters
    "eval.crop_fraction": 1.0,  # the whole (host-resized) image was the evaluation view
    "dataset.host_crops": False,  # the host resized every image to dataset.image_size
    "dataset.host_resize": "pil",  # host views were resized by PIL
    "dataset.num_workers": 0,  # threads of the trainer's process made the batches
    "dataset.worker_buffer_size": 2,
}


def with_saved_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
  """A saved config's plain values with the keys it predates filled in. Runs saved before
  eval.protocols ran kNN, the linear probe and one low-label subset
  (eval.low_label_fraction, eval.low_label_seed): they get exactly those protocols."""
  values = copy.deepcopy(dict(values))
  ev = values.setdefault("eval", {})
  if "protocols" not in ev:
    ev["protocols"] = f"knn,linear,lowlabel-{100 * ev.get('low_label_fraction', 0.01):g}%"
  if "low_label_seeds" not in ev:
    ev["low_label_seeds"] = (ev.get("low_label_seed", 0),)
  for old in ("low_label_fraction", "low_label_seed"):
    ev.pop(old, None)
  for dotted, value in _SAVED_DEFAULTS.items():
    *parents, key = dotted.split(".")
    node = values
    for parent in parents:
      node = node.setdefault(parent, {})
    if key not in node:
      node[key] = copy.deepcopy(value)
  return values


def from_saved(values: Mapping[str, Any]) -> Experiment:
  """The typed experiment of a saved config.json's values (ConfigError if it cannot be)."""
  return Experiment.from_config(with_saved_defaults(values))


def read_saved(workdir: str) -> Experiment:
  """The typed experiment of `workdir`/config.json."""
  return from_saved(json.loads((fs.path(workdir) / "config.json").read_text()))
