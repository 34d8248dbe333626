"""The command line's config: `--config PATH[:ARG]` and `--config.KEY=VALUE`, with one-line errors.

`--config PATH[:ARG]` names an experiment file and calls its `get_config(ARG)`; ARG is a
comma-separated list of the switches the file accepts (`parse_switches`: every file takes
`runlocal`). A PATH that does not exist where the command runs is looked up among the
experiment files of the source checkout next to this package and of an installed wheel (the
package `jax_ssl_experiments`), so `--config experiments/fashion_mnist/simclr.py` works from
any directory. Each `--config.KEY=VALUE` then sets one key of that config, typed like the
value it replaces. A missing file, an unknown switch, an unknown key or a value of the wrong
type is a ConfigError: one line naming it and the closest valid name (difflib).
"""

from __future__ import annotations

import ast
import difflib
import glob
import importlib.util
import os
from collections.abc import Iterable, Sequence
from typing import Any

import ml_collections

from jax_ssl import methods
from jax_ssl.config.checks import FREE, SCHEMA
from jax_ssl.errors import ConfigError

# The name the experiment files have in an installed wheel (pyproject.toml maps it to the
# source checkout's experiments/ folder).
EXPERIMENTS_PACKAGE = "jax_ssl_experiments"
# Sections whose keys are checked after loading (method_args against the method's defaults,
# local-crop overrides against the augmentation keys): a key the experiment file leaves at
# its default may be added there from the command line.
_OPEN_SECTIONS = (("method_args",), ("augment", "local_crops", "overrides"))
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


# ------------------------------------------------------------------ overrides

def split_overrides(args: Sequence[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
  """Command-line arguments -> (the others, [(KEY, VALUE or None)]) of `--config.KEY=VALUE`
  and `--config.KEY VALUE` (VALUE None: `--config.KEY` alone, a boolean's True). Arguments
  after `--` are left alone."""
  rest, overrides = [], []
  index = 0
  while index < len(args):
    arg = args[index]
    if arg == "--":
      rest.extend(args[index:])
      break
    body = arg[2:] if arg.startswith("--") else arg[1:] if arg.startswith("-") else None
    if body is None or not body.startswith("config."):
      rest.append(arg)
      index += 1
      continue
    key, equals, value = body[len("config."):].partition("=")
    if not equals:
      following = args[index + 1] if index + 1 < len(args) else None
      if following is not None and not following.startswith("-"):
        value, index = following, index + 1
      else:
        value = None
    overrides.append((key, value))
    index += 1
  return rest, overrides


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Iterable[tuple[str, str | None]]) -> ml_collections.ConfigDict:
  """Sets each (dotted KEY, VALUE) of `overrides` in `config` (in place; returned), VALUE
  parsed as the type of the value it replaces: int, float, bool (True/False/1/0), str,
  tuple (a Python literal; a single value becomes a 1-tuple), None from "None"; a key new to
  method_args is typed by the method's default.

  Raises:
    ConfigError: an unknown key (naming the closest one), a section given a value, a value
      that is not of the key's type.
  """
  for key, value in overrides:
    _apply_one(config, key, value)
  return config


def _flag(key: str, value: str | None) -> str:
  return f"--config.{key}" + ("" if value is None else f"={value}")


def _apply_one(config: ml_collections.ConfigDict, key: str, value: str | None) -> None:
  parts = key.split(".")
  if not all(parts):
    raise ConfigError(f"{_flag(key, value)}: not a config key; use --config.SECTION.KEY=VALUE")
  node = config
  for depth, part in enumerate(parts[:-1]):
    child = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(child, ml_collections.ConfigDict):
      if child is None and _is_open(parts[:depth + 1]):  # e.g. method_args.simclr.temperature
        node[part] = ml_collections.ConfigDict()
        child = node[part]
      else:
        raise _unknown_key(config, key, value)
    node = child
  name = parts[-1]
  if name not in node:
    negated = name[2:] if name.startswith("no") else None
    if value is None and negated in node and isinstance(node[negated], bool):
      node[negated] = False  # --config.noKEY, absl's spelling of a False boolean
      return
    if not _is_open(parts[:-1]):
      raise _unknown_key(config, key, value)
    default = _new_key_default(config, parts)
    node[name] = _parse(key, value, default,
                        (type(default),) if default is not None else ())
    return
  current = node[name]
  if isinstance(current, ml_collections.ConfigDict) and not _is_free(parts):
    example = next(iter(current.keys()), "KEY")
    raise ConfigError(f"{_flag(key, value)}: '{key}' is a section; set one of its keys, e.g. "
                      f"--config.{key}.{example}=...")
  parsed = _parse(key, value, current, _kinds(parts, current, node.get_type(name)))
  if isinstance(parsed, dict):
    parsed = ml_collections.ConfigDict(parsed)
  try:
    node[name] = parsed
  except TypeError:  # an int the schema lets be a float (e.g. weight_decay=0 -> 1e-4)
    del node[name]
    node[name] = parsed


def _kinds(parts: Sequence[str], current: Any, declared: type) -> tuple[type, ...]:
  """The types a value of the key `parts` may take: SCHEMA's, else the current value's (or
  a placeholder's declared type); () when nothing says (a None in a free section)."""
  schema = _schema_node(parts)
  if isinstance(schema, type):
    return (schema,)
  if isinstance(schema, tuple):
    return tuple(t for t in schema if t is not type(None))
  if current is not None:
    return (type(current),)
  return (declared,) if declared not in (None, type(None)) else ()


def _parse(key: str, value: str | None, current: Any, kinds: tuple[type, ...]) -> Any:
  """`value` (a command-line string) as one of `kinds`; `current` gives the example."""
  flag = _flag(key, value)
  if value is None:
    if bool in kinds:
      return True
    raise ConfigError(f"{flag}: needs a value, e.g. --config.{key}={_example(current)}")
  if value == "None":
    return None
  if bool in kinds:
    if value.lower() in _TRUE + _FALSE:
      return value.lower() in _TRUE
    raise ConfigError(f"{flag}: {key} takes True or False")
  if int in kinds or float in kinds:
    for kind in (int, float):  # an integer where the key takes one, else a float
      try:
        if kind in kinds:
          return kind(value)
      except ValueError:
        pass
    what = "a number" if float in kinds else "an integer"
    raise ConfigError(f"{flag}: {key} takes {what}, e.g. --config.{key}={_example(current)}")
  if str in kinds:
    return value
  if tuple in kinds or list in kinds:
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      raise ConfigError(f"{flag}: {key} takes a tuple, e.g. "
                        f"--config.{key}=\"{_example(current)}\"") from None
    return tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,)
  if dict in kinds or ml_collections.ConfigDict in kinds:
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      parsed = None
    if not isinstance(parsed, dict):
      raise ConfigError(f"{flag}: {key} takes a dict, e.g. --config.{key}=\"{{'name': 1}}\"")
    return parsed
  try:  # nothing to go by (a None default): a Python literal, else the string itself
    return ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return value


def _example(current: Any) -> str:
  if isinstance(current, ml_collections.ConfigDict):
    return str(current.to_dict())
  return str(tuple(current)) if isinstance(current, list) else str(current)


def _schema_node(parts: Sequence[str]) -> Any:
  """SCHEMA's entry for the dotted path `parts`: a dict (section), FREE, a type, or None
  when the path lies inside a FREE section or outside the schema."""
  node: Any = SCHEMA
  for part in parts:
    if node is FREE or not isinstance(node, dict) or part not in node:
      return FREE if node is FREE else None
    node = node[part]
  return node


def _is_free(parts: Sequence[str]) -> bool:
  """Inside a section that SCHEMA leaves to its consumer (method_args, heads, overrides)."""
  return any(_schema_node(parts[:i]) is FREE for i in range(1, len(parts) + 1))


def _is_open(parts: Sequence[str]) -> bool:
  """Keys may be added below `parts` (see _OPEN_SECTIONS)."""
  return any(tuple(parts[:len(open_)]) == open_ for open_ in _OPEN_SECTIONS)


def _new_key_default(config: ml_collections.ConfigDict, parts: Sequence[str]) -> Any:
  """The default a key new to an open section stands for (its type types the value): the
  method's default argument, or the augmentation key a local-crop override replaces."""
  if parts[0] == "method_args":
    try:
      node: Any = methods.get_method(config.method).default_method_args
    except (ValueError, AttributeError):  # an unknown method: validate() names it
      return None
    for part in parts[1:]:
      node = node.get(part) if isinstance(node, dict) else None
    return node
  return config.augment.get(parts[-1])


def _all_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for name in config.keys():
    keys.append(prefix + name)
    if isinstance(config[name], ml_collections.ConfigDict):
      keys.extend(_all_keys(config[name], f"{prefix}{name}."))
  return keys


def _unknown_key(config: ml_collections.ConfigDict, key: str, value: str | None) -> ConfigError:
  """The closest key: a sibling in the key's section when that section exists, else any key
  of the config (a misspelt section); else the keys of the deepest section that exists."""
  parts = key.split(".")
  node, known = config, []
  for part in parts[:-1]:
    if not isinstance(node.get(part), ml_collections.ConfigDict):
      break
    node, known = node[part], known + [part]
  if len(known) == len(parts) - 1:
    close = difflib.get_close_matches(parts[-1], list(node.keys()), n=1, cutoff=0.6)
    close = [".".join(known + close)] if close else []
  else:
    close = difflib.get_close_matches(key, _all_keys(config), n=1, cutoff=0.6)
  if close:
    hint = f"did you mean '{close[0]}'?"
  else:
    where = f"the keys of '{'.'.join(known)}' are" if known else "the top-level keys are"
    hint = f"{where} {', '.join(sorted(node.keys()))}"
  return ConfigError(f"config key '{key}' is unknown ({_flag(key, value)}); {hint}")
