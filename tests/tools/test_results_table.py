"""tools/results_table.py: docs/results.md generated from runs' results.json."""

import json
import os
import re
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
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
                       "three protocols: a, d (2 of 5).")
  assert lines[-1] == ("Fine-tuned encoders above their random initialisation on "
                       "linear_1pct_top1 and finetune_top1: b (1 of 2).")


def test_no_finetune_column_without_finetuned_runs(tmp_path):
  run = _run(tmp_path, "a", "simclr", {"knn_top1": 0.8, "linear_top1": 0.86,
                                       "linear_1pct_top1": 0.79}, {})
  lines = results_table.table([run]).splitlines()
  assert lines[0].endswith("| linear_1pct_top1 |") and len(lines) == 3


def test_rows_name_cpu_protocol_encoder_and_spread(tmp_path):
  pixels = {"knn_top1": 0.79, "linear_top1": 0.84, "linear_1pct_top1": 0.77}
  init = {"knn_top1": 0.76, "linear_top1": 0.82, "linear_1pct_top1": 0.73}
  new = {"knn_top1": 0.80, "linear_top1": 0.86, "linear_1pct_top1": 0.79,
         "linear_1pct_top1_std": 0.01, "linear_1pct_top1_seeds": [0.78, 0.79, 0.80],
         "encoder": "target", "host": {"cpu": "AMD EPYC", "cpu_count": 2}}
  narrow = {"knn_top1": 0.80, "linear_top1": 0.86, "linear_1pct_top1": 0.775,
            "linear_1pct_top1_std": 0.006, "linear_1pct_top1_seeds": [0.77, 0.775, 0.78]}
  old = {"knn_top1": 0.80, "linear_top1": 0.86, "linear_1pct_top1": 0.78}  # one subset
  isa = {**old, "host": {"cpu": "AMD EPYC", "cpu_isa": "AVX2", "cpu_count": 2}}
  runs = [_run(tmp_path, "a", "dino", new, {"raw_pixels": pixels, "random_init": init}),
          _run(tmp_path, "b", "swav", narrow, {"raw_pixels": pixels, "random_init": init}),
          _run(tmp_path, "c", "nnclr", old, {"raw_pixels": pixels, "random_init": init}),
          _run(tmp_path, "d", "byol", isa, {"raw_pixels": pixels, "random_init": init})]
  lines = results_table.table(runs).splitlines()
  assert lines[0] == ("| run | method | dataset | steps | train min | eval min | cpu | "
                      "1% subsets | features | knn_top1 | linear_top1 | linear_1pct_top1 |")
  assert lines[2].endswith("| 2.0 | 1.0 | AMD EPYC | 3 | encoder (target) | 0.8000 | 0.8600 | "
                           "0.7900 ± 0.0100 |")
  assert lines[3].endswith("| — | 3 | encoder | 0.8000 | 0.8600 | 0.7750 ± 0.0060 |")
  assert lines[4].endswith("| — | 1 | encoder | 0.8000 | 0.8600 | 0.7800 |")
  # the vector instruction set beside the model name, where the run recorded it
  assert lines[5].endswith("| AMD EPYC (AVX2) | 1 | encoder | 0.8000 | 0.8600 | 0.7800 |")
  # dino's 1% margin (0.79 - 0.77 = 0.02) exceeds its std; swav's (0.005) does not; nnclr
  # has one subset.
  assert lines[-1] == ("1% margins over the better baseline larger than the std of the 1% "
                       "subsets: a (+0.0200 > 0.0100) (1 of 2 runs with several subsets).")


def test_page_header_names_its_command_and_rows_link_to_their_runs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "docs").mkdir()
  run = _run(tmp_path, "a", "simclr", {"knn_top1": 0.8, "linear_top1": 0.86,
                                       "linear_1pct_top1": 0.79}, {})
  results_table.main([os.path.relpath(run), "--out", "docs/results.md"])
  text = (tmp_path / "docs" / "results.md").read_text()
  assert "\n```bash\n.venv/bin/python tools/results_table.py a --out docs/results.md\n```\n" in text
  # The run's name links to its folder relative to the page (docs/ -> ../a).
  assert "\n| [`a`](../a) | simclr | fashion_mnist | 10 | 2.0 | 1.0 | — | 1 | encoder | " in text
  assert text.endswith("| encoder | 0.8000 | 0.8600 | 0.7900 |\n")


def test_run_without_results_is_one_error_line(tmp_path):
  try:
    results_table.main([str(tmp_path), "--out", str(tmp_path / "results.md")])
  except SystemExit as e:
    assert str(e).startswith(f"error: no results.json in {tmp_path};")
  else:
    raise AssertionError("no error")
  assert not (tmp_path / "results.md").exists()


def test_docs_results_md_is_what_the_tool_makes_from_results(monkeypatch):
  """docs/results.md cannot go stale: regenerated with the command in its own header, from
  the results.json files in the repo, it is unchanged; and every evaluated run in results/
  has its row."""
  monkeypatch.chdir(ROOT)
  with open(os.path.join("docs", "results.md")) as f:
    committed = f.read()
  command = re.search(r"```bash\n(.*tools/results_table\.py .*)\n```", committed).group(1)
  args = results_table.parse_args(shlex.split(command)[2:])
  assert args.out == "docs/results.md"
  assert results_table.page(args.run_dirs, args.out) == committed, (
      f"docs/results.md is stale; regenerate it: {command}")
  evaluated = {os.path.join("results", name) for name in os.listdir("results")
               if os.path.exists(os.path.join("results", name, "results.json"))}
  assert evaluated == set(args.run_dirs)


def test_video_runs_show_each_label_kind_and_which_kinds_beat_the_baselines(tmp_path):
  pixels = {"knn_top1": 0.30, "linear_top1": 0.40, "linear_1pct_top1": 0.20,
            "motion/knn_top1": 0.50, "motion/linear_top1": 0.55, "motion/linear_1pct_top1": 0.4}
  init = {"knn_top1": 0.35, "linear_top1": 0.45, "linear_1pct_top1": 0.25,
          "motion/knn_top1": 0.40, "motion/linear_top1": 0.50, "motion/linear_1pct_top1": 0.3}
  runs = [
      # Learned motion (above both baselines on motion/linear_top1), not the garment.
      _run(tmp_path, "a", "rspnet", {"knn_top1": 0.32, "linear_top1": 0.42,
                                     "linear_1pct_top1": 0.22, "retrieval_recall@1": 0.6,
                                     "motion/knn_top1": 0.70, "motion/linear_top1": 0.80,
                                     "motion/linear_1pct_top1": 0.6,
                                     "motion/retrieval_recall@1": 0.75},
           {"raw_pixels": pixels, "random_init": init}),
      # Learned both.
      _run(tmp_path, "b", "cvrl", {"knn_top1": 0.50, "linear_top1": 0.60,
                                   "linear_1pct_top1": 0.4, "motion/knn_top1": 0.6,
                                   "motion/linear_top1": 0.6, "motion/linear_1pct_top1": 0.5},
           {"raw_pixels": pixels, "random_init": init}),
  ]
  lines = results_table.table(runs).splitlines()
  assert lines[0].endswith("| features | knn_top1 | linear_top1 | linear_1pct_top1 | "
                           "retrieval_recall@1 | motion/knn_top1 | motion/linear_top1 | "
                           "motion/linear_1pct_top1 | motion/retrieval_recall@1 |")
  assert lines[2].endswith("| encoder | 0.3200 | 0.4200 | 0.2200 | 0.6000 | 0.7000 | 0.8000 | "
                           "0.6000 | 0.7500 |")
  assert lines[3].endswith("| encoder | 0.5000 | 0.6000 | 0.4000 | — | 0.6000 | 0.6000 | "
                           "0.5000 | — |")
  assert lines[-2] == ("Encoders above raw pixels and their own random initialisation on all "
                       "three protocols: b (1 of 2).")
  assert lines[-1] == ("Encoders above raw pixels and their own random initialisation on "
                       "linear_top1 for a label kind: a (motion), b (label, motion) "
                       "(2 of 2 runs with several label kinds).")


def test_rows_name_the_vit_blocks_the_linear_probes_read(tmp_path):
  pixels = {"knn_top1": 0.79, "linear_top1": 0.84}
  init = {"knn_top1": 0.70, "linear_top1": 0.81}
  scores = {"knn_top1": 0.72, "linear_top1": 0.83, "encoder": "target",
            "linear_input": {"blocks": 4, "avgpool": False}}
  base = {"knn_top1": 0.71, "linear_top1": 0.82,
          "linear_input": {"blocks": 1, "avgpool": True}}
  runs = [_run(tmp_path, "a", "ibot", scores, {"raw_pixels": pixels, "random_init": init}),
          _run(tmp_path, "b", "ibot", base, {"raw_pixels": pixels, "random_init": init})]
  rows = results_table.table(runs).splitlines()
  assert "| encoder (target; linear on 4 blocks) | 0.7200 | 0.8300 |" in rows[2]
  assert "| encoder (linear on 1 block + mean patch) | 0.7100 | 0.8200 |" in rows[3]
  assert "| raw_pixels | 0.7900 | 0.8400 |" in rows[4]
  assert "| random_init (linear on 4 blocks) | 0.7000 | 0.8100 |" in rows[5]


def test_verdicts_name_runs_not_methods(tmp_path):
  # Two recipes of one method: the verdict must say which run beat its baselines.
  pixels = {"knn_top1": 0.79, "linear_top1": 0.84, "linear_1pct_top1": 0.77}
  init = {"knn_top1": 0.70, "linear_top1": 0.80, "linear_1pct_top1": 0.70}
  runs = [_run(tmp_path, "ibot_fmnist", "ibot", {"knn_top1": 0.75, "linear_top1": 0.85,
                                                 "linear_1pct_top1": 0.74},
               {"raw_pixels": pixels, "random_init": init}),
          _run(tmp_path, "dinov2_fmnist", "ibot", {"knn_top1": 0.81, "linear_top1": 0.85,
                                                   "linear_1pct_top1": 0.78},
               {"raw_pixels": pixels, "random_init": init})]
  lines = results_table.table(runs).splitlines()
  assert "| ibot |" in lines[2] and "| ibot |" in lines[3]  # the method column stays
  assert lines[-1] == ("Encoders above raw pixels and their own random initialisation on all "
                       "three protocols: dinov2_fmnist (1 of 2).")
