"""`--config.KEY=VALUE`: one key of the experiment's config set from the command line, typed by
the schema (schema.py's dataclasses; the method's Args and Heads for `method_args.*` and
`heads.*`), whether or not the experiment file sets that key.

A value is parsed as the key's type: int, float, bool (True/False/1/0; `--config.KEY` alone
is True, `--config.noKEY` False, absl's spelling), str, tuple (a Python literal; a single
value becomes a 1-tuple), a dict for free-form sections (local-crop overrides), None from
"None" where the key allows it. An unknown key (with the closest known one), a section given
a value, or a value of the wrong type is a ConfigError: one line naming it.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Mapping

import ml_collections

from jax_ssl.config import schema
from jax_ssl.config.typed import field_types, is_dataclass_type
from jax_ssl.errors import ConfigError

_TRUE, _FALSE = ("true", "1"), ("false", "0")
_FREE = object()  # below a free-form mapping (augment.local_crops.overrides): any key


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
  """Sets each (dotted KEY, VALUE) of `overrides` in `config` (in place; returned).

  Raises:
    ConfigError: an unknown key (naming the closest one), a section given a value, a value
      that is not of the key's type.
  """
  # `method` first: the keys of method_args and heads are typed by its Args and Heads.
  for key, value in sorted(overrides, key=lambda override: override[0] != "method"):
    _apply_one(config, key, value)
  return config


def _flag(key: str, value: str | None) -> str:
  return f"--config.{key}" + ("" if value is None else f"={value}")


def _method_types(config: ml_collections.ConfigDict) -> dict[str, type]:
  """The Args and Heads dataclasses of the config's method (none for an unknown method:
  Experiment.from_config names it)."""
  from jax_ssl import methods  # pylint: disable=g-import-not-at-top
  name = config.get("method")
  if not isinstance(name, str) or methods.unknown_parts(name):
    return {}
  spec = methods.get_method(name)
  return {"method_args": spec.args_type, "heads": spec.heads_type}


def _fields(node_type: Any, config: ml_collections.ConfigDict, top: bool) -> dict[str, Any]:
  fields = dict(field_types(node_type))
  if top:
    fields.update(_method_types(config))
  return fields


def _hint_of(config: ml_collections.ConfigDict, parts: Sequence[str], key: str,
             value: str | None) -> tuple[Any, list[str]]:
  """The type of the key `parts` and the parts that lead to it; ConfigError if unknown."""
  node_type: Any = schema.Experiment
  for depth, part in enumerate(parts):
    if node_type is _FREE:
      # Local-crop overrides replace augmentation keys: typed like them.
      if list(parts[:depth]) == ["augment", "local_crops", "overrides"]:
        return field_types(schema.Augment).get(part, _FREE), list(parts)
      return _FREE, list(parts)
    fields = _fields(node_type, config, depth == 0)
    if part not in fields:
      raise _unknown_key(config, parts, depth, fields, key, value)
    node_type = fields[part]
    if depth < len(parts) - 1 and not is_dataclass_type(node_type):
      if _is_mapping(node_type):
        node_type = _FREE
      else:
        raise _unknown_key(config, parts, depth + 1, {}, key, value)
  return node_type, list(parts)


def _is_mapping(hint: Any) -> bool:
  return hint in (dict, Mapping, collections.abc.Mapping) or typing.get_origin(hint) in (
      dict, collections.abc.Mapping)


def _apply_one(config: ml_collections.ConfigDict, key: str, value: str | None) -> None:
  parts = key.split(".")
  if not all(parts):
    raise ConfigError(f"{_flag(key, value)}: not a config key; use --config.SECTION.KEY=VALUE")
  try:
    hint, _ = _hint_of(config, parts, key, value)
  except ConfigError as error:
    negated = parts[-1][2:] if parts[-1].startswith("no") else None
    if value is None and negated:  # --config.noKEY, absl's spelling of a False boolean
      try:
        hint, _ = _hint_of(config, [*parts[:-1], negated], key, value)
      except ConfigError:
        raise error from None
      if hint is bool:
        _set(config, [*parts[:-1], negated], False)
        return
    raise
  if is_dataclass_type(hint):
    example = next(iter(field_types(hint)), "KEY")
    raise ConfigError(f"{_flag(key, value)}: '{key}' is a section; set one of its keys, e.g. "
                      f"--config.{key}.{example}=...")
  current = _current(config, parts, hint)
  _set(config, parts, _parse(key, value, current, hint))


def _current(config: ml_collections.ConfigDict, parts: Sequence[str], hint: Any) -> Any:
  """The value the key has now (the experiment file's, else the schema default), for the
  examples of messages."""
  node: Any = config
  for part in parts:
    if isinstance(node, (Mapping, ml_collections.ConfigDict)) and part in node:
      node = node[part]
    else:
      node = None
      break
  if node is not None:
    return node
  defaults: Any = schema.Experiment(method="simclr")
  for part in parts:
    defaults = getattr(defaults, part, None) if dataclasses.is_dataclass(defaults) else None
  return defaults


def _set(config: ml_collections.ConfigDict, parts: Sequence[str], parsed: Any) -> None:
  node = config
  for part in parts[:-1]:
    if part not in node or node[part] is None:
      node[part] = ml_collections.ConfigDict()
    node = node[part]
  name = parts[-1]
  if isinstance(parsed, dict):
    parsed = ml_collections.ConfigDict(parsed)
  if isinstance(node, dict):
    node[name] = parsed
    return
  try:
    node[name] = parsed
  except TypeError:  # another type than the file's value (e.g. weight_decay=0 -> 1e-4)
    del node[name]
    node[name] = parsed


def _kinds(hint: Any) -> tuple[type, ...]:
  """The plain types a value of `hint` may take (None left out)."""
  if hint is _FREE or hint is Any:
    return ()
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    return tuple(k for a in typing.get_args(hint) if a is not type(None) for k in _kinds(a))
  if origin is tuple:
    return (tuple,)
  if _is_mapping(hint):
    return (dict,)
  return (hint,) if isinstance(hint, type) else ()


def _parse(key: str, value: str | None, current: Any, hint: Any) -> Any:
  """`value` (a command-line string) as the type `hint`; `current` gives the example."""
  kinds = _kinds(hint)
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
    if str not in kinds and tuple not in kinds:
      what = "a number" if float in kinds else "an integer"
      raise ConfigError(f"{flag}: {key} takes {what}, e.g. --config.{key}={_example(current)}")
  if str in kinds:
    return value
  if tuple in kinds:
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      raise ConfigError(f"{flag}: {key} takes a tuple, e.g. "
                        f"--config.{key}=\"{_example(current)}\"") from None
    return tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,)
  if dict in kinds:
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      parsed = None
    if not isinstance(parsed, dict):
      raise ConfigError(f"{flag}: {key} takes a dict, e.g. --config.{key}=\"{{'name': 1}}\"")
    return parsed
  try:  # nothing to go by (a free-form key): a Python literal, else the string itself
    return ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return value


def _example(current: Any) -> str:
  if isinstance(current, ml_collections.ConfigDict):
    return str(current.to_dict())
  if dataclasses.is_dataclass(current):
    return str(dataclasses.asdict(current))
  return str(tuple(current)) if isinstance(current, list) else str(current)


def _all_keys(config: ml_collections.ConfigDict) -> list[str]:
  """Every key of the schema (and the config's method's Args and Heads), dotted."""
  keys = []

  def walk(node_type: Any, prefix: str, top: bool) -> None:
    for name, hint in _fields(node_type, config, top).items():
      keys.append(prefix + name)
      if is_dataclass_type(hint):
        walk(hint, f"{prefix}{name}.", False)

  walk(schema.Experiment, "", True)
  return keys


def _unknown_key(config: ml_collections.ConfigDict, parts: Sequence[str], depth: int,
                 fields: Mapping[str, Any], key: str, value: str | None) -> ConfigError:
  """The closest key: a sibling in the key's section when that section exists, else any key
  (a misspelt section); else the keys of the deepest section that exists."""
  known = list(parts[:depth])
  if depth == len(parts) - 1 and fields:
    close = difflib.get_close_matches(parts[-1], list(fields), n=1, cutoff=0.6)
    close = [".".join(known + close)] if close else []
  else:
    close = difflib.get_close_matches(key, _all_keys(config), n=1, cutoff=0.6)
  if close:
    hint = f"did you mean '{close[0]}'?"
  else:
    where = f"the keys of '{'.'.join(known)}' are" if known else "the top-level keys are"
    hint = f"{where} {', '.join(sorted(fields))}"
  return ConfigError(f"config key '{key}' is unknown ({_flag(key, value)}); {hint}")
