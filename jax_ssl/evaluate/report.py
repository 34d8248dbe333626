"""Pictures and Markdown of an evaluation: results tables, training curves, a 2-D embedding
of the test features, the kNN confusion matrix, and DIR/report.md embedding them.

Plots use matplotlib's object-oriented API on the Agg canvas (no display needed); the
embedding is UMAP when `umap` imports, else scikit-learn's t-SNE. Files are written through
etils.epath (jax_ssl/fs.py), so the workdir may be a URL (gs://...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")  # sklearn's plots import pyplot: never a display

import numpy as np  # noqa: E402

from jax_ssl import fs  # noqa: E402

REPORT_FILE = "report.md"
PICTURE_DIR = "report"  # inside the workdir: the PNGs report.md embeds
_ORDER = ("knn", "linear", "finetune")


# ----------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------


def split_label_kind(key: str) -> tuple[str, str]:
  """A result's (label kind, name): "motion/knn_top1" -> ("motion", "knn_top1"); the
  dataset's own label has kind "" ("knn_top1" -> ("", "knn_top1")). Video runs report each
  label key of `eval.label_keys` (evaluate/video.py `label_prefixed`)."""
  kind, _, name = key.rpartition("/")
  return kind, name


def accuracy_keys(results: dict[str, Any]) -> list[str]:
  """The headline accuracies of a results dict (`*_top1` and `retrieval_recall@k`
  numbers), the dataset's label first, then each other label kind, protocol by protocol:
  knn_top1, knn_k10_top1, ..., linear_top1, linear_1pct_top1, ..., finetune_top1, ...,
  retrieval_recall@1, ..., motion/knn_top1, ..."""
  keys = [k for k, v in results.items()
          if (k.endswith("_top1") or "retrieval_recall@" in k)
          and isinstance(v, (int, float)) and not isinstance(v, bool)]

  def order(key: str):
    kind, name = split_label_kind(key)
    family = name.split("_")[0]
    rank = _ORDER.index(family) if family in _ORDER else len(_ORDER)
    middle = name.removesuffix("_top1")[len(family) + 1:]  # "", "k10", "1pct", "recall@5"
    number = float("".join(c for c in middle if c.isdigit() or c == ".") or -1)
    return kind != "", kind, rank, middle != "", number, name

  return sorted(keys, key=order)


def format_accuracy(scores: dict[str, Any], key: str) -> str:
  """'0.8310', '0.8086 ± 0.0040' when scores has key + '_std' over several subsets (one
  subset has no spread to show), '–' when absent."""
  if key not in scores:
    return "–"
  text = f"{scores[key]:.4f}"
  if f"{key}_std" in scores and len(scores.get(f"{key}_seeds", (0, 0))) > 1:
    text += f" ± {scores[key + '_std']:.4f}"
  return text


def results_table(results: dict[str, Any]) -> str:
  """Markdown: one row per feature source (the encoder, then each baseline), one column per
  accuracy of the encoder's results. With several label kinds (a video run's
  `eval.label_keys`), one row per source and kind, a `labels` column naming the kind."""
  keys = accuracy_keys(results)
  rows = [(f"{results['method']} ({results['steps']} steps)", results)]
  rows += list(results.get("baselines", {}).items())
  kinds = list(dict.fromkeys(split_label_kind(k)[0] for k in keys))
  if kinds in ([], [""]):
    lines = ["| features | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, scores in rows:
      lines.append(f"| {name} | " + " | ".join(format_accuracy(scores, k) for k in keys) + " |")
    return "\n".join(lines)
  names = accuracy_keys({split_label_kind(k)[1]: 0.0 for k in keys})
  lines = ["| features | labels | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
  for name, scores in rows:
    for kind in kinds:
      prefix = f"{kind}/" if kind else ""
      lines.append(f"| {name} | {kind or 'label'} | "
                   + " | ".join(format_accuracy(scores, prefix + k) for k in names) + " |")
  return "\n".join(lines)


def comparison_table(runs: Sequence[tuple[str, dict[str, Any]]], *,
                     marks: dict[str, str] | None = None) -> str:
  """Markdown: one row per (name, results) run, one column per accuracy any run has;
  `marks[name]` (e.g. a footnote sign) follows the run's name."""
  keys = accuracy_keys({k: v for _, results in runs for k, v in results.items()})
  lines = ["| run | method | dataset | steps | " + " | ".join(keys) + " |",
           "|---" * (len(keys) + 4) + "|"]
  for name, results in runs:
    mark = f" {marks[name]}" if marks and name in marks else ""
    lines.append(f"| `{name}`{mark} | {results.get('method', '?')} | "
                 f"{results.get('dataset', '?')} | "
                 f"{results.get('steps', '?')} | "
                 + " | ".join(format_accuracy(results, k) for k in keys) + " |")
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------


def _figure(width: float, height: float):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure, path: str) -> None:
  """`figure` as a PNG at `path` (a local path or a URL)."""
  with fs.path(path).open("wb") as f:
    figure.savefig(f, format="png")


def read_metrics(path: str) -> list[dict[str, Any]]:
  return [json.loads(line) for line in fs.path(path).read_text().splitlines() if line.strip()]


def plot_training_curves(records: Sequence[dict[str, Any]], path: str) -> str:
  """loss, learning rate and (when logged) the online probe's accuracy against the step."""
  panels = [("loss", ["loss"] + sorted(k for k in records[0] if k.endswith("/loss")
                                        and not k.startswith("online_probe"))),
            ("learning rate", ["learning_rate"])]
  if any("online_probe/accuracy" in r for r in records):
    panels.append(("online linear probe (train batch)", ["online_probe/accuracy"]))
  figure = _figure(4.2 * len(panels), 3.4)
  axes = figure.subplots(1, len(panels), squeeze=False)[0]
  steps = [r["step"] for r in records]
  for ax, (title, keys) in zip(axes, panels):
    for key in keys:
      values = [r.get(key, np.nan) for r in records]
      ax.plot(steps, values, label=key, marker="." if len(steps) < 30 else None)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(keys) > 1:
      ax.legend(fontsize="small")
  _save(figure, path)
  return path


MIN_EMBEDDING_POINTS = 4  # fewer: no 2-D embedding (t-SNE needs a few neighbours per point)


def embed_2d(features: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, str]:
  """[n, d] -> ([n, 2], "UMAP" or "t-SNE"): L2-normalised rows (the kNN's cosine geometry),
  PCA to min(50, n, d) dimensions when d > 50, then UMAP if importable, else t-SNE; both
  sized to small n (t-SNE's perplexity (n - 1) / 3 up to 30, UMAP's neighbours n - 1 up to
  15). Needs n >= MIN_EMBEDDING_POINTS."""
  count = features.shape[0]
  if count < MIN_EMBEDDING_POINTS:
    raise ValueError(f"a 2-D embedding needs at least {MIN_EMBEDDING_POINTS} points, got {count}")
  features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  if features.shape[1] > 50:
    from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
    features = PCA(n_components=min(50, count), random_state=seed).fit_transform(features)
  try:
    import umap  # pylint: disable=g-import-not-at-top
    return umap.UMAP(n_neighbors=min(15, count - 1), random_state=seed).fit_transform(
        features), "UMAP"
  except ImportError:
    from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
    perplexity = min(30.0, (count - 1) / 3)
    return TSNE(n_components=2, init="pca", perplexity=perplexity,
                random_state=seed).fit_transform(features), "t-SNE"


def plot_embedding(features: np.ndarray, labels: np.ndarray, path: str, *,
                   class_names: Sequence[str] | None = None, max_points: int = 2000,
                   seed: int = 0) -> dict[str, Any]:
  """Scatter of a 2-D embedding of (a seeded random subsample of `max_points` of) the
  features, coloured by class. Returns {"path", "method", "points"}."""
  rng = np.random.default_rng(seed)
  if len(features) > max_points:
    keep = np.sort(rng.choice(len(features), max_points, replace=False))
    features, labels = features[keep], labels[keep]
  points, method = embed_2d(features, seed=seed)
  figure = _figure(6.5, 5.5)
  ax = figure.subplots()
  classes = np.unique(labels)
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  colours = colormaps["tab10" if len(classes) <= 10 else "tab20"]
  for i, label in enumerate(classes):
    chosen = labels == label
    name = class_names[label] if class_names is not None else str(label)
    ax.scatter(points[chosen, 0], points[chosen, 1], s=5, color=colours(i % colours.N),
               label=name)
  ax.set_title(f"{method} of {len(points)} test features")
  ax.set_xticks([])
  ax.set_yticks([])
  if len(classes) <= 20:
    ax.legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1, 0.5))
  _save(figure, path)
  return {"path": path, "method": method, "points": len(points)}


def plot_confusion(labels: np.ndarray, predictions: np.ndarray, path: str, *,
                   num_classes: int, class_names: Sequence[str] | None = None,
                   title: str = "") -> str:
  """Row-normalised confusion matrix (sklearn's ConfusionMatrixDisplay)."""
  from sklearn.metrics import ConfusionMatrixDisplay  # pylint: disable=g-import-not-at-top
  figure = _figure(7.5, 6.5)
  ax = figure.subplots()
  ConfusionMatrixDisplay.from_predictions(
      labels, predictions, labels=list(range(num_classes)), normalize="true",
      display_labels=list(class_names) if class_names is not None else None, ax=ax,
      values_format=".2f", colorbar=False, include_values=num_classes <= 20,
      xticks_rotation="vertical")
  ax.set_title(title)
  _save(figure, path)
  return path


def plot_comparison(runs: Sequence[tuple[str, dict[str, Any]]], path: str) -> str:
  """Grouped bars: one group per accuracy any run has, one bar per run (std as error bar)."""
  keys = accuracy_keys({k: v for _, results in runs for k, v in results.items()})
  figure = _figure(max(6.0, 0.5 * len(keys) * len(runs) + 2), 4.5)
  ax = figure.subplots()
  width = 0.8 / max(len(runs), 1)
  for i, (name, results) in enumerate(runs):
    values = [results.get(k, np.nan) for k in keys]
    errors = [results.get(f"{k}_std", 0.0) for k in keys]
    ax.bar(np.arange(len(keys)) + (i - (len(runs) - 1) / 2) * width, values, width,
           yerr=errors, label=name)
  ax.set_xticks(np.arange(len(keys)), keys, rotation=30, ha="right")
  ax.set_ylabel("top-1 accuracy")
  ax.set_ylim(0, 1)
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize="small")
  _save(figure, path)
  return path


# ----------------------------------------------------------------------------
# report.md
# ----------------------------------------------------------------------------


def write_report(workdir: str, results: dict[str, Any], *, train_features: np.ndarray,
                 train_labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray,
                 knn_predictions: np.ndarray, knn_k: int, num_classes: int,
                 class_names: Sequence[str] | None = None, max_points: int = 2000) -> str:
  """Writes DIR/report/*.png and DIR/report.md (results table + pictures); returns its path.

  Args:
    workdir: the run's directory (its metrics.jsonl gives the training curves).
    results: the run's results (results.json).
    train_features, train_labels: [n, d], [n] (only their count is reported here).
    test_features, test_labels: [m, d], [m]: the embedding is of these.
    knn_predictions: [m] kNN predictions at k = min(knn_k, n): the confusion matrix.
    num_classes, class_names: the label set.
    max_points: test points in the embedding.
  """
  pictures = fs.join(workdir, PICTURE_DIR)
  fs.make_dirs(pictures)
  sections = [f"# {results['method']} on {results['dataset']}, {results['steps']} steps", "",
              results_table(results), ""]
  notes = []
  if "linear_l2" in results:
    notes.append(f"linear probe: L2 penalty {results['linear_l2']:g}, chosen on a held-out 10% "
                 f"of the training split (never the test set)")
  if "finetune_top1" in results:
    notes.append("fine-tuning: " + results.get("finetune_note", ""))
  if "diagnostics" in results:  # RankMe and the normalised std (jax_ssl/diagnostics.py)
    from jax_ssl import diagnostics  # pylint: disable=g-import-not-at-top
    notes.append(diagnostics.describe(results["diagnostics"]))
  notes.append(f"{len(train_labels)} training and {len(test_labels)} test examples; "
               f"`± x`: sample standard deviation over the low-label subsets")
  sections += [f"* {note}" for note in notes] + [""]
  metrics_path = fs.join(workdir, "metrics.jsonl")
  if fs.path(metrics_path).exists() and read_metrics(metrics_path):
    plot_training_curves(read_metrics(metrics_path),
                         fs.join(pictures, "training_curves.png"))
    sections += ["## Training curves", "", f"![training curves]({PICTURE_DIR}/training_curves.png)",
                 ""]
  if len(test_labels) >= MIN_EMBEDDING_POINTS:
    embedding = plot_embedding(test_features, test_labels,
                               fs.join(pictures, "embedding.png"),
                               class_names=class_names, max_points=max_points)
    sections += [f"## Test features: {embedding['method']} of {embedding['points']} points", "",
                 f"![embedding]({PICTURE_DIR}/embedding.png)", ""]
  else:
    sections += ["## Test features", "",
                 f"No 2-D embedding: {len(test_labels)} test examples, fewer than the "
                 f"{MIN_EMBEDDING_POINTS} it needs.", ""]
  accuracy = float(np.mean(knn_predictions == test_labels))
  knn_k = min(knn_k, len(train_labels))  # what the kNN used (knn.py clips k to the train set)
  plot_confusion(test_labels, knn_predictions, fs.join(pictures, "knn_confusion.png"),
                 num_classes=num_classes, class_names=class_names,
                 title=f"kNN (k={knn_k}), top-1 {accuracy:.4f}, rows normalised")
  sections += [f"## kNN confusion matrix (k={knn_k}, test split)", "",
               f"![kNN confusion matrix]({PICTURE_DIR}/knn_confusion.png)", ""]
  path = fs.join(workdir, REPORT_FILE)
  fs.path(path).write_text("\n".join(sections))
  return path
