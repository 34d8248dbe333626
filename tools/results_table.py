"""Generates docs/results.md, the results tables, from runs' results.json (never typed by hand).

  python tools/results_table.py results/simclr_fmnist [more run dirs] --out docs/results.md

Writes the whole page: a header naming this command (so the page says how to regenerate it,
and tests/tools/test_results_table.py can regenerate it and compare), what the columns mean, one
row per run's encoder, each distinct baseline once, and which encoders beat their baselines.
As with BENCHMARKS.md (tools/benchmark_suite.py), the figures live only in the generated page
and in the runs' own files under results/, never in hand-written docs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex

KEYS = ("knn_top1", "linear_top1", "linear_1pct_top1")
# Masked modeling's main protocol (and its baseline: fine-tuning from the random init).
FINETUNE_KEYS = ("linear_1pct_top1", "finetune_top1")
# Columns shown when some run has them.
OPTIONAL_KEYS = ("finetune_top1", "attentive_top1", "retrieval_recall@1")


def label_kinds(runs: list[tuple[str, dict]]) -> list[str]:
  """The label kinds beyond the dataset's "label" that some run reports (a video run's
  `eval.label_keys`: "motion" for results named "motion/knn_top1", ...), sorted."""
  return sorted({k.rpartition("/")[0] for _, r in runs for k in r if "/" in k})


def table(run_dirs: list[str], link_from: str | None = None) -> str:
  """One row per run's encoder, then each distinct baseline once (runs of the same dataset,
  backbone and seed share them), and which encoders beat both baselines of their run; with a
  `finetune_top1` column when some run was fine-tuned (`attentive_top1` when some run ran the
  attentive probe, `retrieval_recall@1` when some ran retrieval), and which fine-tuned
  encoders beat their own random initialisation on FINETUNE_KEYS. Runs reporting other label
  kinds (video runs' `eval.label_keys`, e.g. "motion/linear_top1") get those columns too, and
  a line naming the kinds each encoder's linear probe beats both baselines on. With
  `link_from` (the folder of the page
  the table goes into) each run's name links to its folder, relative to that page."""
  runs = []
  for run_dir in run_dirs:
    with open(os.path.join(run_dir, "results.json")) as f:
      runs.append((run_dir, json.load(f)))
  keys = KEYS + tuple(k for k in OPTIONAL_KEYS if any(k in r for _, r in runs))
  kinds = label_kinds(runs)
  # Each other label kind's columns ("motion/knn_top1", ...) after the dataset label's.
  keys += tuple(f"{kind}/{k}" for kind in kinds for k in KEYS + OPTIONAL_KEYS
                if any(f"{kind}/{k}" in r for _, r in runs))
  lines = ["| run | method | dataset | steps | train min | eval min | cpu | 1% subsets | "
           "features | " + " | ".join(keys) + " |", "|---" * (9 + len(keys)) + "|"]
  baselines: dict[tuple, tuple[str, dict]] = {}
  for run_dir, results in runs:
    lines.append(_row(run_dir, results, "encoder", results, keys, link_from))
    for name, scores in results.get("baselines", {}).items():
      key = (results["dataset"], name, tuple(scores.get(k) for k in keys))
      baselines.setdefault(key, (_row(run_dir, results, name, scores, keys, link_from), scores))
  lines += [row for row, _ in baselines.values()]
  if baselines:
    # Each encoder against its own run's baselines: raw pixels and the random initialisation
    # of its own architecture (a wider representation's random init scores higher).
    # Verdicts name the run (its folder): one method has several recipes (ibot_fmnist and
    # dinov2_fmnist are both `ibot`) and datasets (maskfeat_fmnist, maskfeat_mfmnist).
    beaten = [_name(d) for d, r in runs
              if r.get("baselines") and all(k in r and r[k] > max(
                  b.get(k, 1.0) for b in r["baselines"].values()) for k in KEYS)]
    lines.append("")
    lines.append(f"Encoders above raw pixels and their own random initialisation on all three "
                 f"protocols: {', '.join(beaten) or 'none'} ({len(beaten)} of {len(runs)}).")
    if kinds:  # video runs: which label kinds each encoder learned (linear probe)
      labelled = [(d, r) for d, r in runs if r.get("baselines") and any(
          k.rpartition("/")[0] in kinds for k in r)]
      verdicts = []
      for d, r in labelled:
        above = [kind or "label" for kind in ("", *kinds)
                 if _above_baselines(r, f"{kind}/linear_top1" if kind else "linear_top1")]
        if above:
          verdicts.append(f"{_name(d)} ({', '.join(above)})")
      lines.append(f"Encoders above raw pixels and their own random initialisation on "
                   f"linear_top1 for a label kind: {', '.join(verdicts) or 'none'} "
                   f"({len(verdicts)} of {len(labelled)} runs with several label kinds).")
    finetuned = [(d, r) for d, r in runs if "finetune_top1" in r]
    if finetuned:
      above = [_name(d) for d, r in finetuned
               if all(r[k] > r.get("baselines", {}).get("random_init", {}).get(k, 1.0)
                      for k in FINETUNE_KEYS)]
      lines.append(f"Fine-tuned encoders above their random initialisation on "
                   f"{' and '.join(FINETUNE_KEYS)}: {', '.join(above) or 'none'} "
                   f"({len(above)} of {len(finetuned)}).")
    # The 1% probe's margin over the better baseline against the spread of its subsets
    # (runs with one subset have no spread to compare with).
    key = "linear_1pct_top1"
    spread = [(_name(d), r[key] - max(b.get(key, 0.0) for b in r["baselines"].values()),
               r[f"{key}_std"]) for d, r in runs if r.get("baselines") and f"{key}_std" in r]
    if spread:
      clear = [f"{m} (+{margin:.4f} > {std:.4f})" for m, margin, std in spread if margin > std]
      lines.append(f"1% margins over the better baseline larger than the std of the 1% "
                   f"subsets: {', '.join(clear) or 'none'} ({len(clear)} of {len(spread)} runs "
                   f"with several subsets).")
  return "\n".join(lines)


def _name(run_dir: str) -> str:
  return os.path.basename(os.path.normpath(run_dir))


def _above_baselines(results: dict, key: str) -> bool:
  """Whether the encoder's `key` is above every baseline of its run."""
  return key in results and all(results[key] > b.get(key, 1.0)
                                for b in results.get("baselines", {}).values())


def _row(run_dir: str, results: dict, features: str, scores: dict, keys,
         link_from: str | None = None) -> str:
  """One table row; the encoder's row names a non-online encoder (`encoder (target)`), the
  CPU of the evaluation (results.json's `host`, "—" for runs before it was recorded) and the
  1% protocol (how many class-balanced subsets; one before the 3-subset protocol)."""
  tags = []
  if features == "encoder" and results.get("encoder", "online") != "online":
    tags.append(results["encoder"])
  linear_input = results.get("linear_input")
  if linear_input and features != "raw_pixels":  # the ViT's blocks the linear probes read
    tags.append(f"linear on {linear_input['blocks']} block"
                f"{'s' if linear_input['blocks'] > 1 else ''}"
                f"{' + mean patch' if linear_input['avgpool'] else ''}")
  if tags:
    features = f"{features} ({'; '.join(tags)})"
  cpu = results.get("host", {}).get("cpu", "—")
  if results.get("host", {}).get("cpu_isa"):  # the vector instruction set, where recorded
    cpu += f" ({results['host']['cpu_isa']})"
  seeds = scores.get("linear_1pct_top1_seeds")
  subsets = str(len(seeds)) if seeds else ("1" if "linear_1pct_top1" in scores else "—")
  cells = []
  for k in keys:
    value = f"{scores[k]:.4f}" if k in scores else "—"
    if k in scores and f"{k}_std" in scores and len(scores.get(f"{k}_seeds", (0, 0))) > 1:
      value += f" ± {scores[f'{k}_std']:.4f}"
    cells.append(value)
  name = f"`{run_dir}`"
  if link_from is not None:
    name = f"[{name}]({os.path.relpath(run_dir, link_from).replace(os.sep, '/')})"
  return (f"| {name} | {results['method']} | {results['dataset']} | {results['steps']} | "
          f"{results['train_seconds'] / 60:.1f} | {results.get('eval_seconds', 0) / 60:.1f} | "
          f"{cpu} | {subsets} | {features} | " + " | ".join(cells) + " |")


# What the page says around the generated tables: how to read them, not what they show (the
# numbers are all in the tables and the lines under them).
_INTRO = """\
Each row is a method's default on its dataset, run with the command in its experiment file
(`python -m jax_ssl.train --config experiments/fashion_mnist/<method>.py --workdir
runs/<method>_fmnist`; Moving Fashion-MNIST: `experiments/moving_fashion_mnist/<method>.py`,
`runs/<method>_mfmnist`; seed 0) and evaluated after training as
[evaluation.md](evaluation.md) describes; each run's `results.json`, `metrics.jsonl` and
`config.json` are kept in its folder under `results/`, and each experiment file says what
its recipe gave.

How to read the table:

* Accuracies are fractions of the test split. `knn_top1` is the weighted kNN, `linear_top1`
  the linear probe on all labels, `linear_1pct_top1` the linear probe on class-balanced 1%
  subsets of the labels, averaged over `1% subsets` subsets (mean ± sample std; no std with
  one subset, the protocol of older runs), `finetune_top1` the encoder fine-tuned end to
  end with a new linear head.
* `features`: `encoder` is the pretrained encoder (`encoder (target)`: its EMA teacher, the
  one the method's paper evaluates); `raw_pixels` and `random_init` are the baselines, the
  same protocols on the pixels and on the randomly initialised encoder. A baseline row is
  shown once for all runs that share it (same dataset, backbone and seed); each encoder is
  judged against its own run's two baselines, and a wider representation
  (`model.final_features`) or a ViT has its own random initialisation. `linear on N blocks`
  (`+ mean patch`): the linear probes of that encoder and of its random initialisation read
  DINO's linear-probe input (`eval.linear_blocks` / `eval.linear_avgpool`,
  [evaluation.md](evaluation.md)); kNN reads the output.
* Video runs (Moving Fashion-MNIST, [video.md](video.md)) score each label kind: the
  unprefixed columns the garment class, `motion/...` the motion class (direction x speed);
  `retrieval_recall@1` is clip retrieval (a test clip's nearest training clip has its class).
  A video encoder is judged on `linear_top1` per label kind (the line under the table).
* Masked image modelling (MAE, SimMIM, MaskFeat, BEiT) is judged as its papers judge it, by
  fine-tuning, from the pretrained weights and from the random initialisation.
* `train min` and `eval min` are wall-clock minutes on the machine the run used, some of
  them shared with other jobs; `cpu` is the CPU the evaluation recorded (`results.json`
  `host`, with its vector instruction set where recorded: one model name covers CPUs
  several times apart; "—" for runs made before it was recorded). Step counts, and so accuracies, do not
  depend on the machine.
* The run-to-run spread of these short recipes can exceed the std of the 1% subsets, so a
  margin over a baseline smaller than that std (the last line under the table) is not a
  reliable win.
"""


def page(run_dirs: list[str], out: str) -> str:
  """The whole docs page for `run_dirs` (in that order), to be written at `out`: its header
  names the command that regenerates it."""
  command = shlex.join([".venv/bin/python", "tools/results_table.py", *run_dirs, "--out", out])
  return (f"# Results\n\n"
          f"<!-- Generated by tools/results_table.py from results/*/results.json; do not edit: "
          f"rerun the command below. -->\n"
          f"Generated from each run's `results.json` by (never typed by hand):\n\n"
          f"```bash\n{command}\n```\n\n{_INTRO}\n"
          f"{table(run_dirs, link_from=os.path.dirname(out) or '.')}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dirs", nargs="+", help="run folders with a results.json, in the "
                      "order of the rows")
  parser.add_argument("--out", default="docs/results.md", help="the page to write")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  missing = [d for d in args.run_dirs if not os.path.exists(os.path.join(d, "results.json"))]
  if missing:
    raise SystemExit(f"error: no results.json in {', '.join(missing)}; name run folders that "
                     f"were evaluated (python -m jax_ssl.evaluate --workdir DIR writes it)")
  text = page(args.run_dirs, args.out)
  with open(args.out, "w") as f:
    f.write(text)
  print(f"wrote {args.out} ({len(args.run_dirs)} runs)")


if __name__ == "__main__":
  main()
