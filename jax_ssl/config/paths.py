"""The paths a user gives, made absolute once, where they enter (the command lines).

A relative path means "relative to the directory I typed the command in". Made absolute at
the entry point, it keeps that meaning everywhere below: in Orbax (whose metadata call
returns None for a relative path), in the saved config.json (read again by `python -m
jax_ssl.evaluate` and by resumed runs, perhaps from another directory) and in every message.

A URL (`gs://bucket/run`, any scheme etils.epath reads: jax_ssl/fs.py) is kept as it is; its
client is checked here, so a missing one is one line naming the extra to install.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import ml_collections

from jax_ssl import fs

# Config keys that hold paths (None or "" keep their meaning: the default).
PATH_KEYS = ("dataset.data_dir", "dataset.source_dir")
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


def with_absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose PATH_KEYS and method_args paths are absolute."""
  config = copy.deepcopy(config)
  for dotted in PATH_KEYS:
    *parents, key = dotted.split(".")
    node = config
    for parent in parents:
      node = node.get(parent) if isinstance(node, (Mapping, ml_collections.ConfigDict)) else None
    if node is not None and key in node and isinstance(node[key], str):
      node[key] = absolute_path(node[key], f"--config.{dotted}")
  if "method_args" in config:
    _absolute_method_paths(config.method_args)
  return config


def _absolute_method_paths(section, prefix: str = "method_args") -> None:
  for key in list(section.keys()):
    value = section[key]
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      _absolute_method_paths(value, f"{prefix}.{key}")
    elif key in METHOD_PATH_ARGS and isinstance(value, str):
      section[key] = absolute_path(value, f"--config.{prefix}.{key}")
