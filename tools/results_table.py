"""Regenerates the README results table from runs' results.json (never typed by hand).

  python tools/results_table.py runs/simclr_fmnist [more run dirs] [--readme README.md]

Rewrites the block between `<!-- results:begin -->` and `<!-- results:end -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import re

KEYS = ("knn_top1", "linear_top1", "linear_1pct_top1")


def table(run_dirs: list[str]) -> str:
  """One row per run's encoder, then each distinct baseline once (runs of the same dataset,
  backbone and seed share them), and whether every encoder beats every baseline."""
  lines = ["| run | method | dataset | steps | train min | eval min | features | "
           + " | ".join(KEYS) + " |", "|---" * (7 + len(KEYS)) + "|"]
  baselines: dict[tuple, str] = {}
  encoders = []
  for run_dir in run_dirs:
    with open(os.path.join(run_dir, "results.json")) as f:
      results = json.load(f)
    encoders.append(results)
    lines.append(_row(run_dir, results, "encoder", results))
    for name, scores in results.get("baselines", {}).items():
      key = (results["dataset"], name, tuple(scores[k] for k in KEYS))
      baselines.setdefault(key, _row(run_dir, results, name, scores))
  lines += list(baselines.values())
  if baselines:
    best = {k: max(values[i] for _, _, values in baselines) for i, k in enumerate(KEYS)}
    beaten = [r["method"] for r in encoders if all(r[k] > best[k] for k in KEYS)]
    lines.append("")
    lines.append(f"Encoders above the best baseline on all three protocols: "
                 f"{', '.join(beaten) or 'none'} ({len(beaten)} of {len(encoders)}).")
  return "\n".join(lines)


def _row(run_dir: str, results: dict, features: str, scores: dict) -> str:
  return (f"| `{run_dir}` | {results['method']} | {results['dataset']} | {results['steps']} | "
          f"{results['train_seconds'] / 60:.1f} | {results.get('eval_seconds', 0) / 60:.1f} | "
          f"{features} | " + " | ".join(f"{scores[k]:.4f}" for k in KEYS) + " |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dirs", nargs="+")
  parser.add_argument("--readme", default="README.md")
  args = parser.parse_args()
  with open(args.readme) as f:
    readme = f.read()
  block = f"<!-- results:begin -->\n{table(args.run_dirs)}\n<!-- results:end -->"
  new, count = re.subn(r"<!-- results:begin -->.*?<!-- results:end -->", block, readme, flags=re.S)
  if count != 1:
    raise SystemExit(f"{args.readme} has no results block (<!-- results:begin --> ... <!-- results:end -->)")
  with open(args.readme, "w") as f:
    f.write(new)
  print(table(args.run_dirs))


if __name__ == "__main__":
  main()
