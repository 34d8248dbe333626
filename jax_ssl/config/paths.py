"""The paths a user gives, made absolute once, where they enter (the command lines).

A relative path means "relative to the directory I typed the command in". Made absolute at
the entry point, it keeps that meaning everywhere below: in Orbax (whose metadata call
returns None for a relative path), in the saved config.json (read again by `python -m
jax_ssl.evaluate` and by resumed runs, perhaps from another directory) and in every message.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import ml_collections

# Config keys that hold paths (None or "" keep their meaning: the default).
PATH_KEYS = ("dataset.data_dir", "dataset.source_dir")
# method_args keys that hold paths, in any method's section (mixed methods nest them).
METHOD_PATH_ARGS = ("tokenizer_workdir",)


def absolute_path(path: str | None) -> str | None:
  """`path` with `~` expanded, relative to the current directory; None and "" unchanged."""
  return os.path.abspath(os.path.expanduser(path)) if path else path


def with_absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose PATH_KEYS and method_args paths are absolute."""
  config = copy.deepcopy(config)
  for dotted in PATH_KEYS:
    *parents, key = dotted.split(".")
    node = config
    for parent in parents:
      node = node.get(parent) if isinstance(node, (Mapping, ml_collections.ConfigDict)) else None
    if node is not None and key in node and isinstance(node[key], str):
      node[key] = absolute_path(node[key])
  if "method_args" in config:
    _absolute_method_paths(config.method_args)
  return config


def _absolute_method_paths(section) -> None:
  for key in list(section.keys()):
    value = section[key]
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      _absolute_method_paths(value)
    elif key in METHOD_PATH_ARGS and isinstance(value, str):
      section[key] = absolute_path(value)
