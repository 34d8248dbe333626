"""Whether a workdir's checkpoints can be resumed under a config, what resuming changes, and
the record of every start's config (DIR/config.json, DIR/config_history.jsonl). DIR may be a
URL (gs://...): every file is read and written through etils.epath (jax_ssl/fs.py)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from jax_ssl import fs
from jax_ssl.config.saved import from_saved
from jax_ssl.config.schema import Experiment
from jax_ssl.errors import ConfigError


# Keys that fix the shapes and structure of the saved TrainState: a checkpoint written
# under other values cannot be resumed.
STATE_KEYS = ("method", "model", "heads", "optimizer.name", "dataset.name", "dataset.image_size",
              "online_probe")
# Keys that set the optimisation of a run in progress (the learning-rate schedule and the
# update rule): resuming under other values needs --allow_config_changes. `total_steps` is
# not among them: raising it extends the run (README, "Faults and resuming").
SCHEDULE_KEYS = ("global_batch_size", "optimizer")
HISTORY_FILE = "config_history.jsonl"


@dataclasses.dataclass(frozen=True)
class Resume:
  """What resuming a workdir changes: the config its checkpoints were trained with, the
  latest checkpoint's step, and every key whose value differs (dotted key -> (old, new))."""
  saved: Experiment
  step: int
  changes: dict[str, tuple[Any, Any]]


def check_resume_compatible(config: Experiment, workdir: str, *,
                            allow_config_changes: bool = False) -> Resume | None:
  """None for a workdir without checkpoints; otherwise what resuming it changes.

  Raises ConfigError (one line naming each changed key with old -> new and the fix) if the
  checkpoints come from another model (STATE_KEYS: they cannot be loaded), if an
  optimisation key changed (SCHEDULE_KEYS) without `allow_config_changes`, or if
  `total_steps` is below the latest checkpoint's step.
  """
  saved_path = fs.path(workdir) / "config.json"
  checkpoints = fs.path(workdir) / "checkpoints"
  steps = [int(entry.name) for entry in checkpoints.iterdir() if entry.name.isdigit()] if (
      checkpoints.is_dir()) else []
  if not (saved_path.exists() and steps):
    return None
  saved = from_saved(json.loads(saved_path.read_text()))
  old, new = _flatten(_json_values(saved)), _flatten(_json_values(config))
  changes = {key: (old.get(key, _ABSENT), new.get(key, _ABSENT))
             for key in sorted(set(old) | set(new)) if old.get(key, _ABSENT) != new.get(key, _ABSENT)}
  model = {k: v for k, v in changes.items() if _under(k, STATE_KEYS)}
  if model:
    what = "optimizer" if set(model) == {"optimizer.name"} else "model"
    raise ConfigError(f"cannot resume {workdir}: its checkpoints were written for another {what} "
                      f"({_describe(model)}); use a new --workdir, or {_flags(model)} to resume it")
  schedule = {k: v for k, v in changes.items() if _under(k, SCHEDULE_KEYS)}
  if schedule and not allow_config_changes:
    raise ConfigError(
        f"cannot resume {workdir} with another optimisation ({_describe(schedule)}): it would "
        f"change the learning rate of a run in progress; use a new --workdir, "
        f"{_flags(schedule)} to resume it as it was, or --allow_config_changes to resume "
        f"with the new value{'s' if len(schedule) > 1 else ''} (recorded in "
        f"{fs.join(workdir, HISTORY_FILE)})")
  step = max(steps)
  if config.total_steps < step:
    raise ConfigError(
        f"cannot resume {workdir}: total_steps={config.total_steps} is below step {step} of its "
        f"latest checkpoint; pass --config.total_steps={step} or more, or use a new --workdir")
  return Resume(saved=saved, step=step, changes=changes)


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
  """`key: old -> new, ...` (the values as Python writes them; `(unset)` for a missing key)."""
  return _describe(changes)


def record_config(config: Experiment, workdir: str, *, start_step: int,
                  resume: Resume | None) -> None:
  """Writes DIR/config.json (the config of this start) and appends to DIR/config_history.jsonl
  when a run starts from step 0 or resumes with changed keys, so no earlier config is lost."""
  history = fs.join(workdir, HISTORY_FILE)
  rows = []
  if resume is not None and not fs.path(history).exists():  # a workdir from before the history
    rows.append({"start_step": 0, "config": _json_values(resume.saved)})
  if start_step == 0 or (resume is not None and resume.changes):
    rows.append({"start_step": start_step,
                 "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "changes": {k: list(v) for k, v in (resume.changes if resume else {}).items()},
                 "config": _json_values(config)})
  if rows:
    fs.append_text(history, "".join(json.dumps(row, default=str) + "\n" for row in rows))
  (fs.path(workdir) / "config.json").write_text(json.dumps(_json_values(config), indent=2))


def _json_values(config: Experiment) -> dict[str, Any]:
  """The experiment as config.json holds it (tuples as lists)."""
  return json.loads(json.dumps(config.to_dict()))


class _Absent:
  def __repr__(self) -> str:
    return "(unset)"


_ABSENT = _Absent()


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _under(key: str, roots: tuple[str, ...]) -> bool:
  return any(key == root or key.startswith(root + ".") for root in roots)


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
  return ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def _flags(changes: dict[str, tuple[Any, Any]]) -> str:
  """`--config.KEY=OLD ...` when every old value fits on a command line."""
  if not all(isinstance(old, (bool, int, float, str)) for old, _ in changes.values()):
    return "the values of its config.json"
  return " ".join(f"--config.{k}={old}" for k, (old, _) in changes.items())
