r"""The first logged losses of every experiment file of a folder, for behaviour-unchanged checks.

Each experiment file trains `--steps` steps (logged every step, no evaluation) in a fresh
workdir, in its own process, and the losses of its metrics.jsonl are written to `--out` as
JSON {experiment file: [loss, ...]}. A refactoring that must not change numbers records them
before and after and compares with `--compare BEFORE.json` (relative tolerance `--rtol`).

BEiT reads a VQ tokenizer run: the tokenizer experiment of the same folder runs first and
BEiT is pointed at its workdir (`--tokenizer-key` names the override key).

  python tools/first_losses.py --out /tmp/losses_before.json
  python tools/first_losses.py --out /tmp/losses_xla.json -- --config.backend=xla
  python tools/first_losses.py --out /tmp/after.json --compare /tmp/losses_before.json
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile


def losses_of(workdir: str) -> list[float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f if line.strip()]


def run(experiment: str, workdir: str, steps: int, extra: list[str]) -> list[float]:
  command = [sys.executable, "-m", "jax_ssl.train", "--config", experiment, "--workdir", workdir,
             f"--config.total_steps={steps}", "--config.log_every_steps=1",
             "--config.evaluate=False", f"--config.checkpoint_every_steps={steps}", *extra]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    raise RuntimeError(f"{experiment}: exit {done.returncode}\n{done.stderr[-3000:]}")
  return losses_of(workdir)


def compare(before: dict[str, list[float]], after: dict[str, list[float]], rtol: float) -> bool:
  same = True
  for name in sorted(set(before) | set(after)):
    old, new = before.get(name), after.get(name)
    if old is None or new is None:
      print(f"{name}: only in {'after' if old is None else 'before'}")
      same = False
      continue
    worst = max((abs(a - b) / max(abs(a), 1e-12) for a, b in zip(old, new)), default=0.0)
    ok = len(old) == len(new) and worst <= rtol and all(map(math.isfinite, new))
    same &= ok
    print(f"{'ok  ' if ok else 'DIFF'} {name}: {len(new)} losses, worst relative difference "
          f"{worst:.2e}")
  return same


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--folder", default="experiments/fashion_mnist")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--out", required=True)
  parser.add_argument("--only", default="", help="comma-separated file stems")
  parser.add_argument("--tokenizer-key", default="method_args.tokenizer_workdir")
  parser.add_argument("--compare", default=None)
  parser.add_argument("--rtol", type=float, default=1e-6)
  parser.add_argument("extra", nargs="*", help="more --config.KEY=VALUE for every run")
  args = parser.parse_args()
  files = sorted(f for f in glob.glob(os.path.join(args.folder, "*.py"))
                 if not os.path.basename(f).startswith("_"))
  only = {s for s in args.only.split(",") if s}
  if only:
    files = [f for f in files if os.path.splitext(os.path.basename(f))[0] in only]
  # The tokenizer before BEiT, which reads it.
  files.sort(key=lambda f: "vq_tokenizer" not in f)
  results: dict[str, list[float]] = {}
  with tempfile.TemporaryDirectory() as root:
    tokenizer_dir = os.path.join(root, "vq_tokenizer")
    for experiment in files:
      stem = os.path.splitext(os.path.basename(experiment))[0]
      extra = list(args.extra)
      if stem == "beit":
        extra.append(f"--config.{args.tokenizer_key}={tokenizer_dir}")
      workdir = tokenizer_dir if stem == "vq_tokenizer" else os.path.join(root, stem)
      results[experiment] = run(experiment, workdir, args.steps, extra)
      print(f"{experiment}: {results[experiment][:3]} ...", flush=True)
  with open(args.out, "w") as f:
    json.dump(results, f, indent=1)
  if args.compare:
    with open(args.compare) as f:
      before = json.load(f)
    sys.exit(0 if compare(before, results, args.rtol) else 1)


if __name__ == "__main__":
  main()
