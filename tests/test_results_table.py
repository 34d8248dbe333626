"""tools/results_table.py: the README table generated from runs' results.json."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import results_table  # noqa: E402


def _run(tmp_path, name, method, scores, baselines):
  directory = tmp_path / name
  directory.mkdir()
  results = {"method": method, "dataset": "fashion_mnist", "steps": 10, "train_seconds": 120.0,
             "eval_seconds": 60.0, **scores, "baselines": baselines}
  (directory / "results.json").write_text(json.dumps(results))
  return str(directory)


def test_table_rows_baselines_and_finetune_verdicts(tmp_path):
  pixels = {"knn_top1": 0.79, "linear_top1": 0.84, "linear_1pct_top1": 0.77}
  cnn_init = {"knn_top1": 0.76, "linear_top1": 0.82, "linear_1pct_top1": 0.73}
  vit_init = {"knn_top1": 0.70, "linear_top1": 0.78, "linear_1pct_top1": 0.65,
              "finetune_top1": 0.86}
  wide_init = {"knn_top1": 0.77, "linear_top1": 0.85, "linear_1pct_top1": 0.75}
  runs = [
      # Beats its own baselines; below the wider encoder's random init on linear, which is
      # not its baseline.
      _run(tmp_path, "a", "simclr", {"knn_top1": 0.80, "linear_top1": 0.845,
                                     "linear_1pct_top1": 0.79},
           {"raw_pixels": pixels, "random_init": cnn_init}),
      # Beats its random init on 1% and fine-tuning, not the pixels on kNN.
      _run(tmp_path, "b", "mae", {"knn_top1": 0.75, "linear_top1": 0.85,
                                  "linear_1pct_top1": 0.70, "finetune_top1": 0.88},
           {"raw_pixels": pixels, "random_init": vit_init}),
      # Fine-tunes worse than its random init.
      _run(tmp_path, "c", "simmim", {"knn_top1": 0.72, "linear_top1": 0.80,
                                     "linear_1pct_top1": 0.68, "finetune_top1": 0.85},
           {"raw_pixels": pixels, "random_init": vit_init}),
      # A 512-d representation: beats the pixels and its own (higher) random init.
      _run(tmp_path, "d", "dino", {"knn_top1": 0.80, "linear_top1": 0.87,
                                   "linear_1pct_top1": 0.78},
           {"raw_pixels": pixels, "random_init": wide_init}),
      # Beats the pixels, not its own random init on linear.
      _run(tmp_path, "e", "jigsaw", {"knn_top1": 0.80, "linear_top1": 0.845,
                                     "linear_1pct_top1": 0.78},
           {"raw_pixels": pixels, "random_init": wide_init}),
  ]
  lines = results_table.table(runs).splitlines()
  assert lines[0].endswith("| linear_1pct_top1 | finetune_top1 |")
  assert lines[2].endswith("| encoder | 0.8000 | 0.8450 | 0.7900 | — |")
  assert lines[3].endswith("| encoder | 0.7500 | 0.8500 | 0.7000 | 0.8800 |")
  # Baselines once each: pixels (shared), the CNN's and the ViT's random init.
  baseline_rows = [line for line in lines if "| raw_pixels |" in line or "| random_init |" in line]
  assert len(baseline_rows) == 4
  assert baseline_rows[2].endswith("| random_init | 0.7000 | 0.7800 | 0.6500 | 0.8600 |")
  assert lines[-2] == ("Encoders above raw pixels and their own random initialisation on all "
                       "three protocols: simclr, dino (2 of 5).")
  assert lines[-1] == ("Fine-tuned encoders above their random initialisation on "
                       "linear_1pct_top1 and finetune_top1: mae (1 of 2).")


def test_no_finetune_column_without_finetuned_runs(tmp_path):
  run = _run(tmp_path, "a", "simclr", {"knn_top1": 0.8, "linear_top1": 0.86,
                                       "linear_1pct_top1": 0.79}, {})
  lines = results_table.table([run]).splitlines()
  assert lines[0].endswith("| linear_1pct_top1 |") and len(lines) == 3
