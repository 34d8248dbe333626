"""Pictures, report.md and `python -m jax_ssl.compare` (jax_ssl/evaluate/report.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import assert_real_png
from jax_ssl import compare
from jax_ssl.evaluate import report


def _clusters(seed=0, per_class=40, num_classes=4, dim=16):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(num_classes), per_class)
  features = 8.0 * np.eye(num_classes, dim)[labels] + rng.normal(size=(len(labels), dim))
  return features.astype(np.float32), labels


def test_pictures_are_valid_non_blank_pngs(tmp_path):
  records = [{"step": s, "loss": 5.0 / s, "learning_rate": min(s, 5) * 1e-3,
              "online_probe/accuracy": 0.1 + 0.02 * s} for s in range(1, 21)]
  assert_real_png(report.plot_training_curves(records, str(tmp_path / "curves.png")))
  features, labels = _clusters()
  embedding = report.plot_embedding(features, labels, str(tmp_path / "embedding.png"),
                                    class_names=["a", "b", "c", "d"], max_points=100)
  assert embedding["method"] in ("UMAP", "t-SNE") and embedding["points"] == 100
  assert_real_png(embedding["path"])
  predictions = labels.copy()
  predictions[:10] = 1  # some class-0 examples confused with class 1
  assert_real_png(report.plot_confusion(labels, predictions, str(tmp_path / "confusion.png"),
                                        num_classes=4, title="kNN"))


def test_embedding_separates_separable_clusters():
  # t-SNE of well-separated clusters: every point's nearest 2-D neighbour is of its class.
  features, labels = _clusters(per_class=30)
  points, _ = report.embed_2d(features, seed=0)
  distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
  np.fill_diagonal(distances, np.inf)
  assert np.mean(labels[np.argmin(distances, axis=1)] == labels) > 0.95


def test_results_table_orders_protocols_and_shows_std():
  results = {"method": "simclr", "steps": 8, "knn_top1": 0.5, "knn_k10_top1": 0.25,
             "knn_k200_top1": 0.5, "linear_top1": 0.75, "linear_10pct_top1": 0.625,
             "linear_10pct_top1_std": 0.03125, "linear_1pct_top1": 0.375,
             "linear_1pct_top1_std": 0.0625, "linear_1pct_top1_seeds": [0.3, 0.4, 0.425],
             "finetune_top1": 0.875, "knn_k": 200, "linear_l2": 0.001,
             "baselines": {"raw_pixels": {"knn_top1": 0.125, "linear_top1": 0.25}}}
  table = report.results_table(results).splitlines()
  assert table[0] == ("| features | knn_top1 | knn_k10_top1 | knn_k200_top1 | linear_top1 | "
                      "linear_1pct_top1 | linear_10pct_top1 | finetune_top1 |")
  assert table[2] == ("| simclr (8 steps) | 0.5000 | 0.2500 | 0.5000 | 0.7500 | "
                      "0.3750 ± 0.0625 | 0.6250 ± 0.0312 | 0.8750 |")
  assert table[3] == "| raw_pixels | 0.1250 | – | – | 0.2500 | – | – | – |"


def test_compare_writes_a_table_of_every_run_and_a_bar_chart(tmp_path):
  runs = {"runs/a": {"method": "simclr", "dataset": "fashion_mnist", "steps": 800,
                     "knn_top1": 0.831, "linear_top1": 0.8708, "linear_1pct_top1": 0.8086,
                     "linear_1pct_top1_std": 0.004},
          "runs/b": {"method": "byol", "dataset": "fashion_mnist", "steps": 400,
                     "knn_top1": 0.75, "linear_top1": 0.8, "finetune_top1": 0.9}}
  for name, results in runs.items():
    os.makedirs(tmp_path / name)
    (tmp_path / name / "results.json").write_text(json.dumps(results))
  out = tmp_path / "out" / "cmp.md"
  table = compare.main([str(tmp_path / "runs/a"), str(tmp_path / "runs/b" / "results.json"),
                        "--out", str(out)])
  lines = out.read_text().splitlines()
  assert lines[0] == ("| run | method | dataset | steps | knn_top1 | linear_top1 | "
                      "linear_1pct_top1 | finetune_top1 |")
  assert lines[2].endswith("| simclr | fashion_mnist | 800 | 0.8310 | 0.8708 | 0.8086 ± 0.0040 | – |")
  assert lines[3].endswith("| byol | fashion_mnist | 400 | 0.7500 | 0.8000 | – | 0.9000 |")
  assert table in out.read_text() and "![comparison](cmp.png)" in out.read_text()
  assert_real_png(tmp_path / "out" / "cmp.png")
  with pytest.raises(SystemExit, match=r"error: .*nowhere/results.json not found"):
    compare.main([str(tmp_path / "nowhere")])


def test_report_adapts_to_small_test_splits(tmp_path):
  """64-d features of 10 test images (an own dataset of ~100 images at the 10% test split):
  the embedding is sized to them; under 4 test images the report says why it has none."""
  features, labels = _clusters(per_class=10, num_classes=2, dim=64)
  order = np.random.default_rng(0).permutation(20)
  features, labels = features[order], labels[order]
  results = {"method": "simclr", "dataset": "mine", "steps": 2, "knn_top1": 1.0, "knn_k": 10}
  path = report.write_report(str(tmp_path), results, train_features=features[:10],
                             train_labels=labels[:10], test_features=features[10:],
                             test_labels=labels[10:], knn_predictions=labels[10:], knn_k=200,
                             num_classes=2, class_names=["a", "b"])
  text = open(path).read()
  assert "## Test features: t-SNE of 10 points" in text or "UMAP of 10 points" in text
  assert "## kNN confusion matrix (k=10, test split)" in text  # k clipped to the 10 train points
  assert_real_png(tmp_path / "report" / "embedding.png")
  path = report.write_report(str(tmp_path / "tiny"), results, train_features=features[:7],
                             train_labels=labels[:7], test_features=features[7:10],
                             test_labels=labels[7:10], knn_predictions=labels[7:10], knn_k=200,
                             num_classes=2)
  lines = open(path).read().splitlines()
  assert lines[lines.index("## Test features") + 2] == (
      "No 2-D embedding: 3 test examples, fewer than the 4 it needs.")
  assert "## kNN confusion matrix (k=7, test split)" in lines  # k clipped to the 7 train points
  assert not os.path.exists(tmp_path / "tiny" / "report" / "embedding.png")
  assert_real_png(tmp_path / "tiny" / "report" / "knn_confusion.png")


def test_compare_writes_next_to_the_first_run_and_marks_subset_runs(tmp_path, monkeypatch):
  full = {"method": "simclr", "dataset": "fashion_mnist", "steps": 800, "knn_top1": 0.83,
          "eval_examples": {"train": [60000, 60000], "test": [10000, 10000]}}
  subset = {"method": "byol", "dataset": "fashion_mnist", "steps": 20, "knn_top1": 0.5,
            "eval_examples": {"train": [2000, 60000], "test": [1000, 10000]}}
  older = {"method": "mae", "dataset": "fashion_mnist", "steps": 20, "knn_top1": 0.4}
  for name, results in (("full", full), ("subset", subset), ("older", older)):
    os.makedirs(tmp_path / "runs" / name)
    (tmp_path / "runs" / name / "results.json").write_text(json.dumps(results))
  # A run saved before eval_examples: its config.json's limits mark it.
  (tmp_path / "runs" / "older" / "config.json").write_text(
      json.dumps({"eval": {"train_limit": 2000, "test_limit": 0}}))
  monkeypatch.chdir(tmp_path / "runs" / "full")
  compare.main(["../full", "../subset", "../older"])
  assert os.listdir(".") == ["results.json"]  # nothing written into the current directory
  lines = (tmp_path / "runs" / "comparison.md").read_text().splitlines()
  assert lines[2] == "| `../full` | simclr | fashion_mnist | 800 | 0.8300 |"
  assert lines[3] == "| `../subset` † | byol | fashion_mnist | 20 | 0.5000 |"
  assert lines[4] == "| `../older` † | mae | fashion_mnist | 20 | 0.4000 |"
  assert lines[6] == ("† evaluated on a subset, not comparable with whole-split rows: "
                      "`../subset`: 2000 of 60000 training examples, 1000 of 10000 test "
                      "examples; `../older`: at most 2000 training examples "
                      "(eval.train_limit / eval.test_limit)")
  assert_real_png(tmp_path / "runs" / "comparison.png")


def test_accuracy_shows_a_spread_only_over_several_subsets():
  from jax_ssl.evaluate import report  # pylint: disable=g-import-not-at-top
  several = {"linear_1pct_top1": 0.8086, "linear_1pct_top1_std": 0.004,
             "linear_1pct_top1_seeds": [0.804, 0.809, 0.8128]}
  one = {"linear_1pct_top1": 0.401, "linear_1pct_top1_std": 0.0, "linear_1pct_top1_seeds": [0.401]}
  assert report.format_accuracy(several, "linear_1pct_top1") == "0.8086 ± 0.0040"
  assert report.format_accuracy(one, "linear_1pct_top1") == "0.4010"
  assert report.format_accuracy({}, "knn_top1") == "–"
