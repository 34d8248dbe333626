"""`python -m jax_ssl.compare DIR1 DIR2 ... [--out FILE.md]`: compare runs' results.json.

Writes a Markdown table (one row per run, one column per accuracy any run reports; `± x`
is the standard deviation over low-label subsets) to FILE.md and a grouped bar chart of the
same numbers to FILE.png, and prints the table. A DIR may also be a results.json file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from jax_ssl.evaluate import report


def load_runs(paths: list[str]) -> list[tuple[str, dict]]:
  """[(path, results)]; raises SystemExit with one line for a missing or unreadable file."""
  runs = []
  for path in paths:
    file = path if path.endswith(".json") else os.path.join(path, "results.json")
    try:
      with open(file) as f:
        runs.append((path, json.load(f)))
    except FileNotFoundError:
      raise SystemExit(f"error: {file} not found: give run directories that hold a "
                       f"results.json (python -m jax_ssl.train or jax_ssl.evaluate writes it)")
    except (OSError, json.JSONDecodeError) as e:
      raise SystemExit(f"error: cannot read {file} ({e}); rerun `python -m jax_ssl.evaluate "
                       f"--workdir {os.path.dirname(file) or '.'}` to rewrite it")
  return runs


def main(argv: list[str] | None = None) -> str:
  parser = argparse.ArgumentParser(prog="python -m jax_ssl.compare",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", help="run directories (or results.json files)")
  parser.add_argument("--out", default="comparison.md",
                      help="Markdown file; the bar chart goes next to it as .png")
  args = parser.parse_args(argv)
  runs = load_runs(args.runs)
  table = report.comparison_table(runs)
  chart = os.path.splitext(args.out)[0] + ".png"
  if os.path.dirname(args.out):
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
  report.plot_comparison(runs, chart)
  with open(args.out, "w") as f:
    f.write(f"{table}\n\n![comparison]({os.path.basename(chart)})\n")
  print(table)
  print(f"wrote {args.out} and {chart}", file=sys.stderr)
  return table


if __name__ == "__main__":
  main()
