"""`python -m jax_ssl.compare DIR1 DIR2 ... [--out FILE.md]`: compare runs' results.json.

Writes a Markdown table (one row per run, one column per accuracy any run reports; `± x`
is the standard deviation over low-label subsets) to FILE.md and a grouped bar chart of the
same numbers to FILE.png, and prints the table. A DIR may also be a results.json file.

Where: `--out FILE.md` if given, else `comparison.md` next to the first run, i.e. in the
folder that holds DIR1 (`runs/comparison.md` for `runs/a runs/b`); never the current
directory unless that is where DIR1 lies. The last line printed names both files.

Runs evaluated on a subset (`eval.train_limit` / `eval.test_limit` below the split's size,
as the `:runlocal` configs do) are not comparable with full-test-set runs: their row and bar
are marked `†`, and a footnote under the table gives the examples each used.

Runs and FILE.md may be URLs (gs://...): they are read and written through etils.epath
(jax_ssl/fs.py); a URL whose client is missing is one line naming the extra to install.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jax_ssl import fs
from jax_ssl.errors import UserInputError
from jax_ssl.evaluate import report

SUBSET_MARK = "†"


def load_runs(paths: list[str]) -> list[tuple[str, dict]]:
  """[(path, results)]; raises SystemExit with one line for a missing or unreadable file."""
  runs = []
  for path in paths:
    file = path if path.endswith(".json") else fs.join(path, "results.json")
    try:
      runs.append((path, json.loads(fs.path(file).read_text())))
    except FileNotFoundError:
      raise SystemExit(f"error: {file} not found: give run directories that hold a "
                       f"results.json (python -m jax_ssl.train or jax_ssl.evaluate writes it)")
    except (OSError, json.JSONDecodeError) as e:
      raise SystemExit(f"error: cannot read {file} ({e}); rerun `python -m jax_ssl.evaluate "
                       f"--workdir {fs.parent(file) or '.'}` to rewrite it")
  return runs


def subset_note(path: str, results: dict[str, Any]) -> str | None:
  """'256 of 512 training, 128 of 10000 test examples' for a run evaluated on a subset, None
  for one evaluated on whole splits. From results.json's `eval_examples`; for results
  written before it, from the limits in the run's config.json (sizes unknown: 'at most')."""
  counts = results.get("eval_examples")
  if counts:
    parts = [f"{used} of {total} {name} examples"
             for split, name in (("train", "training"), ("test", "test"))
             for used, total in [counts.get(split, (0, 0))] if used < total]
    return ", ".join(parts) or None
  config_path = fs.join(fs.parent(path) if path.endswith(".json") else path, "config.json")
  try:
    ev = json.loads(fs.path(config_path).read_text()).get("eval", {})
  except (OSError, json.JSONDecodeError):
    return None
  parts = [f"at most {ev[key]} {name} examples"
           for key, name in (("train_limit", "training"), ("test_limit", "test")) if ev.get(key)]
  return ", ".join(parts) or None


def default_out(first_run: str) -> str:
  """comparison.md in the folder that holds the first run (its directory's parent)."""
  run_dir = fs.parent(first_run) if first_run.endswith(".json") else first_run
  return fs.join(fs.parent(fs.absolute(run_dir)), "comparison.md")


def main(argv: list[str] | None = None) -> str:
  parser = argparse.ArgumentParser(prog="python -m jax_ssl.compare",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", help="run directories (or results.json files)")
  parser.add_argument("--out", default=None,
                      help="Markdown file (default: comparison.md in the folder that holds the "
                           "first run); the bar chart goes next to it as .png")
  args = parser.parse_args(argv)
  try:
    for path in args.runs:
      fs.check_client(path, "run")
    fs.check_client(args.out, "--out")
  except UserInputError as e:
    raise SystemExit(f"error: {e}") from None
  runs = load_runs(args.runs)
  notes = {path: subset_note(path, results) for path, results in runs}
  marks = {path: SUBSET_MARK for path, note in notes.items() if note}
  table = report.comparison_table(runs, marks=marks)
  footnotes = [f"{SUBSET_MARK} evaluated on a subset, not comparable with whole-split rows: "
               + "; ".join(f"`{path}`: {note}" for path, note in notes.items() if note)
               + " (eval.train_limit / eval.test_limit)"] if any(notes.values()) else []
  text = "\n\n".join([table, *footnotes])
  out = fs.absolute(args.out or default_out(args.runs[0]))
  chart = str(fs.path(out).with_suffix(".png"))
  fs.make_dirs(fs.parent(out))
  report.plot_comparison([(f"{path} {marks[path]}" if path in marks else path, results)
                          for path, results in runs], chart)
  fs.path(out).write_text(f"{text}\n\n![comparison]({fs.path(chart).name})\n")
  print(text)
  print(f"wrote {out} and {chart}", file=sys.stderr)
  return text


if __name__ == "__main__":
  main()
