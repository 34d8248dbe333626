"""The paths a user gives, made absolute once, where they enter (the command lines).

A relative path means "relative to the directory I typed the command in". Made absolute at
the entry point, it keeps that meaning everywhere below: in Orbax (whose metadata call
returns None for a relative path), in the saved config.json (read again by `python -m
jax_ssl.evaluate` and by resumed runs, perhaps from another directory) and in every message.

A URL (`gs://bucket/run`, any scheme etils.epath reads: jax_ssl/fs.py) is kept as it is; its
client is checked here, so a missing one is one line naming the extra to install.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jax_ssl import fs
from jax_ssl.config.schema import Experiment

# method_args keys that hold paths, in any method's section (mixed methods nest them).
METHOD_PATH_ARGS = ("tokenizer_workdir",)


def absolute_path(path: str | None, what: str = "--workdir") -> str | None:
  """`path` with `~` expanded, relative to the current directory; None, "" and URLs unchanged.

  Raises ConfigError (one line naming `what`, the flag or key it came from) for a URL whose
  filesystem client is not installed (`gs://` without gcsfs: `pip install 'jax_ssl[gcs]'`).
  """
  if not path:
    return path
  fs.check_client(path, what)
  return fs.absolute(path)


def with_absolute_paths(config: Experiment) -> Experiment:
  """A copy of `config` whose dataset paths and method-argument paths are absolute."""
  dataset = config.dataset
  changes = {}
  for key in ("data_dir", "source_dir"):
    value = getattr(dataset, key)
    if isinstance(value, str):
      changes[key] = absolute_path(value, f"--config.dataset.{key}")
  return dataclasses.replace(config, dataset=dataclasses.replace(dataset, **changes),
                             method_args=_absolute_method_paths(config.method_args))


def _absolute_method_paths(args: Any, prefix: str = "method_args") -> Any:
  """`args` (a method's Args, or a mixed method's Args of Args) with METHOD_PATH_ARGS absolute."""
  if not dataclasses.is_dataclass(args):
    return args
  changes = {}
  for field in dataclasses.fields(args):
    value = getattr(args, field.name)
    if dataclasses.is_dataclass(value):
      changes[field.name] = _absolute_method_paths(value, f"{prefix}.{field.name}")
    elif field.name in METHOD_PATH_ARGS and isinstance(value, str):
      changes[field.name] = absolute_path(value, f"--config.{prefix}.{field.name}")
  return dataclasses.replace(args, **changes)
