"""The lines the trainer prints about a run's course (process 0 only): resumed, what changed,
stopped by a signal, aborted, finished before, done. Each names the paths and the next
command, so a user (or a scheduler's log) knows where the run is without reading the code.
The workdir may be a URL (gs://...; jax_ssl/fs.py)."""

from __future__ import annotations

import json
from typing import Any

import jax

from jax_ssl import checkpoint, fs
from jax_ssl import config as config_lib
from jax_ssl.config.schema import Experiment

EVALUATE = "python -m jax_ssl.evaluate --workdir {workdir}"

def print0(line: str) -> None:
  if jax.process_index() == 0:
    print(line, flush=True)

def resumed(config: Experiment, workdir: str, resume: config_lib.Resume | None,
            step: int, schedule) -> None:
  """`resumed from step N of M`, then the keys that changed and the learning rate's change
  at step N (old schedule -> this config's `schedule`)."""
  print0(f"resumed from step {step} of {config.total_steps} ({workdir}/checkpoints/{step})")
  if resume is None or not resume.changes:
    return
  print0(f"config changed since the last start: {config_lib.describe_changes(resume.changes)} "
         f"(every start's config is in {workdir}/{config_lib.HISTORY_FILE})")
  old = float(config_lib.build_optimizer(resume.saved)[1](step))
  new = float(schedule(step))
  before, after = resume.saved.total_steps, config.total_steps
  if before != after or old != new:
    rule = (f"total_steps {before} -> {after}: the warmup-cosine schedule now ends at step "
            f"{after}; " if before != after else "")
    change = f"changes from {old:.4g} to {new:.4g}" if old != new else f"stays {new:.4g}"
    print0(f"{rule}the learning rate at step {step} {change}")

def results_of(workdir: str, step: int) -> dict[str, Any] | None:
  """DIR/results.json if it holds the results of `step`."""
  path = fs.path(workdir) / "results.json"
  if not path.exists():
    return None
  results = json.loads(path.read_text())
  return results if results.get("steps") == step else None

def finished(config: Experiment, workdir: str, step: int,
             results: dict[str, Any] | None, resume: config_lib.Resume | None) -> None:
  """The line of a rerun that finds the run trained to total_steps and nothing left to do
  (evaluated, or evaluate=False)."""
  evaluate = EVALUATE.format(workdir=workdir)
  saved = f"checkpoint {workdir}/checkpoints/{step}"
  where = (f"results in {workdir}/results.json, {saved}; to evaluate again: {evaluate}"
           if results is not None else f"{saved}; evaluate=False, to evaluate it: {evaluate}")
  unused = (f" (these config changes were not applied: "
            f"{config_lib.describe_changes(resume.changes)})" if resume and resume.changes else "")
  print0(f"already finished: {workdir} was trained to step {step} of {config.total_steps}, "
         f"nothing was redone{unused}; {where}")

def stopped(signal_name: str, workdir: str, step: int, total_steps: int) -> None:
  """After the first SIGINT/SIGTERM: the checkpoint of `step` is saved (0: nothing ran)."""
  print0(f"stopped by {signal_name} before the first step; nothing to save; rerun the same "
         f"command to start" if step == 0 else
         f"stopped by {signal_name} at step {step} of {total_steps} and saved it in "
         f"{workdir}/checkpoints/{step}; rerun the same command to resume from step {step}")

def stopped_in_evaluation(signal_name: str, workdir: str) -> int | None:
  """After a signal during the evaluation; returns the trained step."""
  step = checkpoint.last_complete_step(fs.join(workdir, "checkpoints"))
  print0(f"stopped by {signal_name} during the evaluation: training is complete "
         f"({workdir}/checkpoints/{step}); rerun the same command to evaluate it")
  return step

def aborted(workdir: str) -> str:
  """The line of a second SIGINT (interrupts.StopSignals prints it from its handler)."""
  checkpoints = fs.join(workdir, "checkpoints")
  step = checkpoint.last_complete_step(checkpoints)
  resume = (f"resume from step {step} ({checkpoints}/{step}), the last complete checkpoint"
            if step is not None else "start again (no checkpoint was completed)")
  return f"aborted by a second SIGINT without finishing the save; rerun the same command to {resume}"

def done(config: Experiment, workdir: str, step: int,
         results: dict[str, Any] | None) -> None:
  saved = f"checkpoint {workdir}/checkpoints/{step}"
  if results is not None:
    print0(f"done: results in {workdir}/results.json, {saved}")
  elif not config.evaluate:
    print0(f"done: {saved} (evaluate=False; to evaluate it: {EVALUATE.format(workdir=workdir)})")
  else:
    print0(f"done: {saved} (not evaluated: the dataset has no labels)")
