"""Which protocols to run, and the frozen-feature protocols on arrays (no config).

Protocol names (`eval.protocols` or `python -m jax_ssl.evaluate --protocols`, comma
separated):
  knn             weighted kNN (cosine, temperature): `knn_top1` at k = `knn_k`, and
                  `knn_k<K>_top1` for every K of the k sweep
  linear          logistic regression on all training labels, its L2 penalty chosen on a
                  held-out 10% of the training split: `linear_top1`, `linear_l2`,
                  `linear_holdout_top1` (held-out accuracy of every penalty tried)
  finetune        the backbone plus a linear classifier trained end to end:
                  `finetune_top1` (see finetune.py)
  lowlabel        the linear probe on class-balanced 1% and 10% subsets of the training
                  labels (one subset per seed of `low_label_seeds`): `linear_1pct_top1`
                  (mean over the subsets), `..._std`, `..._seeds`, `..._l2`; with
                  `finetune` also selected, fine-tuning on the same subsets:
                  `finetune_1pct_top1`, ...
  lowlabel-<P>%   the same at P% only (e.g. lowlabel-1%)
  attentive       V-JEPA's attentive probe (a learned query cross-attending over the frozen
                  patch tokens, then a linear classifier) trained on all training labels:
                  `attentive_top1` (see attentive_probe.py)
  retrieval       nearest-neighbour retrieval, test examples querying the training split by
                  cosine similarity (RSPNet's video retrieval): `retrieval_recall@1`, `@5`,
                  `@10` (see retrieval.py)

Video datasets run every protocol once per label key (`eval.label_keys`, evaluate/video.py):
the dataset's "label" under the names above, another key K (Moving Fashion-MNIST's
"motion") under "K/<name>" (`motion/knn_top1`, `motion/linear_1pct_top1_std`, ...).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from jax_ssl.errors import ConfigError
from jax_ssl.evaluate import knn, linear_probe, retrieval

PROTOCOL_NAMES = ("knn", "linear", "finetune", "lowlabel", "attentive", "retrieval")
LOW_LABEL_PERCENTS = (1.0, 10.0)  # what `lowlabel` alone means (SimCLR's 1% and 10%)
_LOW_LABEL = re.compile(r"lowlabel-(\d+(?:\.\d+)?)%")


@dataclasses.dataclass(frozen=True)
class Protocols:
  """The protocols to run. low_label_percents: percentages of the training labels (empty:
  no low-label protocol)."""

  knn: bool = False
  linear: bool = False
  finetune: bool = False
  low_label_percents: tuple[float, ...] = ()
  attentive: bool = False
  retrieval: bool = False

  @property
  def frozen(self) -> bool:
    """Whether any protocol runs on frozen features (and so needs them extracted)."""
    return self.knn or self.linear or bool(self.low_label_percents) or self.retrieval
  # `attentive` reads patch tokens (attentive_probe.py), not these pooled features.


def parse_protocols(spec: str | Sequence[str]) -> Protocols:
  """'knn,linear,lowlabel-1%' (or a sequence of names) -> Protocols.

  Raises:
    ConfigError: one line naming the unknown protocol and the allowed names.
  """
  tokens = spec.split(",") if isinstance(spec, str) else list(spec)
  chosen: dict[str, Any] = {"low_label_percents": []}
  for token in (t.strip() for t in tokens):
    if not token or token == "none":
      continue
    match = _LOW_LABEL.fullmatch(token)
    if token in ("knn", "linear", "finetune", "attentive", "retrieval"):
      chosen[token] = True
    elif token == "lowlabel":
      chosen["low_label_percents"] += LOW_LABEL_PERCENTS
    elif match and 0 < float(match.group(1)) <= 100:
      chosen["low_label_percents"].append(float(match.group(1)))
    else:
      raise ConfigError(
          f"unknown evaluation protocol {token!r} in {','.join(tokens)!r}; choose from "
          f"knn, linear, finetune, lowlabel, lowlabel-<P>% (0 < P <= 100, e.g. lowlabel-1%), "
          f"attentive, retrieval, comma separated")
  chosen["low_label_percents"] = tuple(sorted(set(chosen["low_label_percents"])))
  return Protocols(**chosen)


def percent_name(percent: float) -> str:
  """1.0 -> '1pct', 0.5 -> '0.5pct' (the key infix of low-label results)."""
  return f"{percent:g}pct"


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1; 0.0 for a single value) of the per-subset
  accuracies."""
  values = np.asarray(values, np.float64)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return float(np.mean(values)), std


def low_label_subsets(train_labels: np.ndarray, percent: float, *, num_classes: int,
                      seeds: Sequence[int]) -> list[np.ndarray]:
  """One fixed class-balanced subset (indices) of `percent`% of the labels per seed."""
  return [linear_probe.class_balanced_subset(train_labels, percent / 100,
                                             num_classes=num_classes, seed=seed)
          for seed in seeds]


def low_label_results(prefix: str, percent: float, per_seed: Sequence[float],
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
  """{f"{prefix}_{P}pct_top1": mean, ..._std, ..._seeds: per-subset values, **extra}."""
  name = f"{prefix}_{percent_name(percent)}"
  mean, std = mean_and_std(per_seed)
  results = {f"{name}_top1": mean, f"{name}_top1_std": std,
             f"{name}_top1_seeds": [float(v) for v in per_seed]}
  for key, value in (extra or {}).items():
    results[f"{name}_{key}"] = value
  return results


def frozen_feature_protocols(
    train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
    test_labels: np.ndarray, protocols: Protocols, *, num_classes: int, knn_k: int,
    knn_k_sweep: Sequence[int], knn_temperature: float, low_label_seeds: Sequence[int],
) -> tuple[dict[str, Any], np.ndarray | None]:
  """The kNN, linear and low-label linear protocols on frozen features.

  Args:
    train_features, train_labels: [n, d] and [n] of the training split.
    test_features, test_labels: [m, d] and [m] of the test split.
    protocols: which to run (finetune is not a frozen-feature protocol: ignored here);
      retrieval: Recall@1/5/10 of the test features querying the training features.
    num_classes: number of classes.
    knn_k: the k of `knn_top1` (200 in the README table); `knn_k` in the results is
      the k used, clipped to the number of training examples.
    knn_k_sweep: further k values, each reported as `knn_k<K>_top1`.
    knn_temperature: neighbour weight exp(cos / temperature).
    low_label_seeds: one class-balanced subset per seed for each low-label percentage.

  Returns:
    (results: accuracies as fractions, the chosen penalties and the per-subset values; the kNN predictions at k = knn_k, [m], or None without kNN).
  """
  results: dict[str, Any] = {}
  predictions = None
  if protocols.knn:
    ks = tuple(dict.fromkeys([knn_k, *knn_k_sweep]))
    by_k = knn.knn_sweep_predict(train_features, train_labels, test_features,
                                 num_classes=num_classes, ks=ks, temperature=knn_temperature)
    accuracy = {k: float(np.mean(p == test_labels)) for k, p in by_k.items()}
    predictions = by_k[knn_k]
    results["knn_top1"] = accuracy[knn_k]
    results["knn_k"] = min(knn_k, len(train_labels))  # the k used: clipped to the train set
    results.update({f"knn_k{k}_top1": accuracy[k] for k in sorted(knn_k_sweep)})
  if protocols.linear:
    probe = linear_probe.linear_probe_accuracy(train_features, train_labels, test_features,
                                               test_labels, num_classes=num_classes)
    results["linear_top1"] = probe["top1"]
    results["linear_l2"] = probe["l2"]
    results["linear_holdout_top1"] = {f"{l2:g}": v for l2, v in probe["holdout_top1"].items()}
  for percent in protocols.low_label_percents:
    per_seed, penalties = [], []
    for subset in low_label_subsets(train_labels, percent, num_classes=num_classes,
                                    seeds=low_label_seeds):
      # Few labels (60 per class at 1% of Fashion-MNIST): 5-fold cross-validation on the
      # subset picks the penalty, far less noisy than one small holdout.
      probe = linear_probe.linear_probe_accuracy(
          train_features[subset], train_labels[subset], test_features, test_labels,
          num_classes=num_classes, folds=5, steps=100)
      per_seed.append(probe["top1"])
      penalties.append(probe["l2"])
    results.update(low_label_results("linear", percent, per_seed, {"l2": penalties}))
  if protocols.retrieval:
    results.update(retrieval.retrieval_recall(train_features, train_labels, test_features,
                                              test_labels))
  return results, predictions
