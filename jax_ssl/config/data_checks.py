"""Checks of the config against the dataset's size and labels, before any step compiles.

Refused (DataError, one line naming the fix) where the run cannot give a meaningful result:
evaluation on fewer than 2 classes (every protocol scores 1.0) or without a test split (it
would fail after training). Warned (one line each) where it still runs: fewer training
examples than the global batch (batches repeat examples), kNN's k above the training set
(clipped), a low-label subset of one example per class.
"""

from __future__ import annotations

import jax

from jax_ssl.config.schema import Experiment
from jax_ssl.errors import DataError

# The fix that always applies: no evaluation.
_PRETRAIN_ONLY = "or pretrain only with --config.evaluate=False"

def _split_size(info, split: str) -> int | None:
  """Examples in `split` (TFDS slices such as train[:90%] included); None if it is absent."""
  try:
    return int(info.splits[split].num_examples)
  except (KeyError, ValueError):
    return None

def refuse_unevaluable(config: Experiment, info) -> None:
  """Raises DataError (one line) if the labelled dataset cannot be evaluated: fewer than 2
  classes, or no (or an empty) test split. Unlabelled datasets pass (the evaluation is
  skipped with its own message)."""
  if "label" not in info.features:
    return
  data = config.dataset
  if (("video" in info.features or "video_shape" in (info.metadata or {}))  # pipeline.is_video
      and (config.eval.linear_blocks > 1 or config.eval.linear_avgpool)):
    raise DataError(
        f"eval.linear_blocks={config.eval.linear_blocks} / eval.linear_avgpool="
        f"{config.eval.linear_avgpool}: the clip evaluation probes the encoder's pooled "
        f"output only; use 1 / False for the videos of {data.name!r}")
  names = list(info.features["label"].names)
  if len(names) < 2:
    raise DataError(
        f"dataset {data.name!r} has {len(names)} class ({', '.join(names)}): the evaluation "
        f"needs at least 2 (with one, every protocol scores 1.0); add a folder per class and "
        f"rebuild it, {_PRETRAIN_ONLY}")
  if info.splits and not _split_size(info, data.test_split):  # (no split sizes: TFDS mocks)
    rebuild = (info.metadata or {}).get("rebuild_command")
    fix = ("rebuild it with more images per class (its --test_fraction holds out "
           "round(fraction x images) of each class) or from train/ and test/ folders"
           if rebuild else "set --config.dataset.test_split to a split it has")
    raise DataError(
        f"dataset {data.name!r} has no {data.test_split!r} examples (its splits: "
        f"{', '.join(f'{s} {info.splits[s].num_examples}' for s in info.splits)}): the "
        f"evaluation needs a test split; {fix}, {_PRETRAIN_ONLY}")

def training_data_warnings(config: Experiment, info) -> list[str]:
  """The one-line warnings (without the "warning: " prefix) for a run on this dataset."""
  from jax_ssl.evaluate import protocols  # pylint: disable=g-import-not-at-top
  data, ev = config.dataset, config.eval
  warnings = []
  train_size = _split_size(info, data.train_split)
  if train_size is not None and train_size < config.global_batch_size:
    warnings.append(
        f"dataset {data.name!r} split {data.train_split!r} has {train_size} "
        f"example{'s' if train_size != 1 else ''}, fewer "
        f"than global_batch_size={config.global_batch_size}: every batch repeats them "
        f"({config.global_batch_size / max(train_size, 1):.1f} copies each); lower "
        f"--config.global_batch_size or add images")
  if not (config.evaluate and "label" in info.features and train_size):
    return warnings
  evaluated = min(ev.train_limit, train_size) if ev.train_limit else train_size
  chosen = protocols.parse_protocols(ev.protocols)
  if chosen.knn:
    above = sorted({k for k in (ev.knn_k, *ev.knn_k_sweep) if k > evaluated})
    if above:
      warnings.append(
          f"eval.knn_k={ev.knn_k} and k sweep {tuple(ev.knn_k_sweep)}: "
          f"{', '.join(map(str, above))} above the {evaluated} training examples evaluated; "
          f"kNN uses k={evaluated} for {'it' if len(above) == 1 else 'them'}")
  num_classes = info.features["label"].num_classes
  for percent in chosen.low_label_percents:
    per_class = max(1, round(percent / 100 * evaluated / num_classes))
    if per_class == 1:
      warnings.append(
          f"lowlabel-{percent:g}% of {evaluated} training examples is 1 example per class "
          f"({num_classes} in all): linear_{protocols.percent_name(percent)}_top1 rests on one "
          f"image per class")
  return warnings

def check_training_data(config: Experiment, info) -> list[str]:
  """Before training: refuses what cannot be evaluated (when `config.evaluate`) and prints
  the warnings (process 0); returns them."""
  if config.evaluate:
    refuse_unevaluable(config, info)
  warnings = training_data_warnings(config, info)
  if jax.process_index() == 0:
    for warning in warnings:
      print(f"warning: {warning}", flush=True)
  return warnings

