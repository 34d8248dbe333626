"""The command line's config: `--config PATH[:ARG]` and `--config.KEY=VALUE`, with one-line errors.

`--config PATH[:ARG]` names an experiment file and calls its `get_config(ARG)`; ARG is a
comma-separated list of the switches the file accepts (`parse_switches`: every file takes
`runlocal`). A PATH that does not exist where the command runs is looked up among the
experiment files of the source checkout next to this package and of an installed wheel (the
package `jax_ssl_experiments`), so `--config experiments/fashion_mnist/simclr.py` works from
any directory. Each `--config.KEY=VALUE` then sets one key of that config, typed by the
schema (overrides.py). A missing file, an unknown switch, an unknown key or a value of the
wrong type is a ConfigError: one line naming it and the closest valid name (difflib).
"""

from __future__ import annotations

import difflib
import glob
import importlib.util
import os
from collections.abc import Sequence

import ml_collections

from jax_ssl.config import overrides
from jax_ssl.config.schema import Experiment
from jax_ssl.errors import ConfigError

# The name the experiment files have in an installed wheel (pyproject.toml maps it to the
# source checkout's experiments/ folder).
EXPERIMENTS_PACKAGE = "jax_ssl_experiments"
# Sections whose keys are checked after loading (method_args and heads by the method's Args
# and Heads dataclasses, local-crop overrides against the augmentation keys): a key the
# experiment file leaves at its default may be added there from the command line.
_OPEN_SECTIONS = (("method_args",), ("heads",), ("augment", "local_crops", "overrides"))
_TRUE, _FALSE = ("true", "1"), ("false", "0")


# ------------------------------------------------------------------ experiment files

def parse_switches(arg: str | None, accepted: Sequence[str]) -> frozenset[str]:
  """An experiment file's `get_config(arg)` argument as the set of its switches.

  Args:
    arg: None or "" (no switch), or switches joined by ",", e.g. "runlocal,vit_tiny".
    accepted: the switches the file knows.

  Returns:
    The switches given.

  Raises:
    ConfigError: one line naming an unknown switch, the closest accepted one and all of them.
  """
  given = [part.strip() for part in (arg or "").split(",") if part.strip()]
  for switch in given:
    if switch not in accepted:
      close = difflib.get_close_matches(switch, accepted, n=1)
      hint = f"did you mean '{close[0]}'? " if close else ""
      raise ConfigError(f"unknown argument '{switch}'; {hint}this file accepts "
                        f"{', '.join(accepted)} (several joined by ','), or none")
  return frozenset(given)


def experiment_roots() -> list[str]:
  """Folders holding experiment files besides the current directory: the source checkout's
  experiments/ next to this package, then the installed `jax_ssl_experiments`."""
  roots = []
  checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), "experiments")
  if os.path.isdir(checkout):
    roots.append(checkout)
  spec = importlib.util.find_spec(EXPERIMENTS_PACKAGE)
  if spec is not None and spec.submodule_search_locations:
    roots.extend(p for p in spec.submodule_search_locations if p not in roots)
  return roots


def resolve_experiment(path: str) -> str | None:
  """`path` if it exists; else `experiments/<rest>` found in an `experiment_roots()` folder;
  else None."""
  if os.path.isfile(path):
    return path
  parts = os.path.normpath(path).split(os.sep)
  if parts[0] == "experiments" and len(parts) > 1:
    for root in experiment_roots():
      candidate = os.path.join(root, *parts[1:])
      if os.path.isfile(candidate):
        return candidate
  return None


def _experiment_files() -> list[str]:
  """Every experiment file, as `experiments/<dataset>/<name>.py` (what `--config` takes)."""
  names = set()
  for root in [os.path.join(os.getcwd(), "experiments"), *experiment_roots()]:
    for found in glob.glob(os.path.join(root, "*", "*.py")):
      if not os.path.basename(found).startswith("_"):
        names.add(os.path.join("experiments", os.path.relpath(found, root)))
  return sorted(names)


def _closest_file(path: str) -> str | None:
  """The experiment file (or a file beside `path`) whose path is closest to `path`."""
  candidates = _experiment_files()
  folder = os.path.dirname(path)
  if os.path.isdir(folder or "."):
    candidates += [os.path.join(folder, name) for name in os.listdir(folder or ".")
                   if name.endswith(".py") and not name.startswith("_")]
  close = difflib.get_close_matches(os.path.normpath(path), candidates, n=1, cutoff=0.6)
  return close[0] if close else None


def split_spec(spec: str) -> tuple[str, str | None]:
  """"PATH[:ARG]" -> (PATH, ARG or None)."""
  if spec.endswith(".py") or ":" not in spec:
    return spec, None
  path, _, arg = spec.rpartition(":")
  return path, arg or None


def load_experiment(spec: str) -> ml_collections.ConfigDict:
  """`get_config(ARG)` of the experiment file `PATH` of "PATH[:ARG]".

  Raises:
    ConfigError: the file does not exist (naming the closest experiment file), defines no
      get_config, or rejects ARG (its message prefixed with `--config SPEC`).
  """
  path, arg = split_spec(spec)
  found = resolve_experiment(path)
  if found is None:
    close = _closest_file(path)
    hint = f"did you mean {close}{'' if arg is None else ':' + arg}?" if close else (
        "give the path of an experiment file, e.g. experiments/fashion_mnist/simclr.py")
    file = "" if arg is None else f" {path}"
    raise ConfigError(f"--config {spec}: no such experiment file{file}; {hint}")
  name = os.path.splitext(os.path.basename(found))[0]
  module_spec = importlib.util.spec_from_file_location(f"experiment_{name}", found)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"--config {spec}: {found} defines no get_config(arg); an experiment "
                      f"file returns its ConfigDict from get_config")
  try:
    config = module.get_config(arg) if arg is not None else module.get_config()
  except ConfigError as e:
    raise ConfigError(f"--config {spec}: {e}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"--config {spec}: get_config returned a {type(config).__name__}, "
                      f"not an ml_collections.ConfigDict")
  return config


# `--config.KEY=VALUE` (overrides.py), re-exported for the entry points.
split_overrides = overrides.split_overrides
apply_overrides = overrides.apply_overrides


def typed_experiment(spec: str, overrides: Sequence[tuple[str, str | None]] = ()) -> Experiment:
  """The typed experiment of the experiment file `spec` ("PATH[:ARG]") with `overrides`
  applied: what the trainer's command line means. Raises ConfigError (one line) for any
  mistake in them, and for `eval.report=True` without the [eval] extra (said now rather than
  after the training)."""
  config = Experiment.from_config(apply_overrides(load_experiment(spec), overrides))
  if config.evaluate and config.eval.report:
    missing = [name for name in ("matplotlib", "sklearn") if not _installed(name)]
    if missing:
      raise ConfigError(
          f"eval.report=True needs {' and '.join(missing)} (not installed): pip install "
          f"'jax_ssl[eval]' (in a checkout: pip install -e '.[all]'), or pass "
          f"--config.eval.report=False")
  return config


def _installed(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False
