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
# Masked modeling's main protocol (and its baseline: fine-tuning from the random init).
FINETUNE_KEYS = ("linear_1pct_top1", "finetune_top1")


def table(run_dirs: list[str]) -> str:
  """One row per run's encoder, then each distinct baseline once (runs of the same dataset,
  backbone and seed share them), and which encoders beat both baselines of their run; with a
  `finetune_top1` column when some run was fine-tuned, and which fine-tuned encoders beat
  their own random initialisation on FINETUNE_KEYS."""
  runs = []
  for run_dir in run_dirs:
    with open(os.path.join(run_dir, "results.json")) as f:
      runs.append((run_dir, json.load(f)))
  keys = KEYS + (("finetune_top1",) if any("finetune_top1" in r for _, r in runs) else ())
  lines = ["| run | method | dataset | steps | train min | eval min | cpu | 1% subsets | "
           "features | " + " | ".join(keys) + " |", "|---" * (9 + len(keys)) + "|"]
  baselines: dict[tuple, tuple[str, dict]] = {}
  for run_dir, results in runs:
    lines.append(_row(run_dir, results, "encoder", results, keys))
    for name, scores in results.get("baselines", {}).items():
      key = (results["dataset"], name, tuple(scores.get(k) for k in keys))
      baselines.setdefault(key, (_row(run_dir, results, name, scores, keys), scores))
  lines += [row for row, _ in baselines.values()]
  if baselines:
    # Each encoder against its own run's baselines: raw pixels and the random initialisation
    # of its own architecture (a wider representation's random init scores higher).
    beaten = [r["method"] for _, r in runs
              if r.get("baselines") and all(r[k] > max(b[k] for b in r["baselines"].values())
                                            for k in KEYS)]
    lines.append("")
    lines.append(f"Encoders above raw pixels and their own random initialisation on all three "
                 f"protocols: {', '.join(beaten) or 'none'} ({len(beaten)} of {len(runs)}).")
    finetuned = [r for _, r in runs if "finetune_top1" in r]
    if finetuned:
      above = [r["method"] for r in finetuned
               if all(r[k] > r.get("baselines", {}).get("random_init", {}).get(k, 1.0)
                      for k in FINETUNE_KEYS)]
      lines.append(f"Fine-tuned encoders above their random initialisation on "
                   f"{' and '.join(FINETUNE_KEYS)}: {', '.join(above) or 'none'} "
                   f"({len(above)} of {len(finetuned)}).")
    # The 1% probe's margin over the better baseline against the spread of its subsets
    # (runs with one subset have no spread to compare with).
    key = "linear_1pct_top1"
    spread = [(r["method"], r[key] - max(b.get(key, 0.0) for b in r["baselines"].values()),
               r[f"{key}_std"]) for _, r in runs if r.get("baselines") and f"{key}_std" in r]
    if spread:
      clear = [f"{m} (+{margin:.4f} > {std:.4f})" for m, margin, std in spread if margin > std]
      lines.append(f"1% margins over the better baseline larger than the std of the 1% "
                   f"subsets: {', '.join(clear) or 'none'} ({len(clear)} of {len(spread)} runs "
                   f"with several subsets).")
  return "\n".join(lines)


def _row(run_dir: str, results: dict, features: str, scores: dict, keys) -> str:
  """One table row; the encoder's row names a non-online encoder (`encoder (target)`), the
  CPU of the evaluation (results.json's `host`, "—" for runs before it was recorded) and the
  1% protocol (how many class-balanced subsets; one before the 3-subset protocol)."""
  if features == "encoder" and results.get("encoder", "online") != "online":
    features = f"encoder ({results['encoder']})"
  cpu = results.get("host", {}).get("cpu", "—")
  seeds = scores.get("linear_1pct_top1_seeds")
  subsets = str(len(seeds)) if seeds else ("1" if "linear_1pct_top1" in scores else "—")
  cells = []
  for k in keys:
    value = f"{scores[k]:.4f}" if k in scores else "—"
    if k in scores and f"{k}_std" in scores and len(scores.get(f"{k}_seeds", (0, 0))) > 1:
      value += f" ± {scores[f'{k}_std']:.4f}"
    cells.append(value)
  return (f"| `{run_dir}` | {results['method']} | {results['dataset']} | {results['steps']} | "
          f"{results['train_seconds'] / 60:.1f} | {results.get('eval_seconds', 0) / 60:.1f} | "
          f"{cpu} | {subsets} | {features} | " + " | ".join(cells) + " |")


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
