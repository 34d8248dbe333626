"""Frozen dataclasses from the plain values of a config, with one-line errors.

Every typed section of the configuration (the experiment's sections in schema.py, each
method's `Args` and `Heads`) is a frozen dataclass whose field defaults *are* the schema:
`from_mapping(cls, values, prefix)` builds one from a mapping (a ConfigDict's `to_dict()`,
a saved config.json), filling what the mapping leaves out with the defaults and refusing,
in one line that names the key, the value and what is allowed:
  * an unknown key, with the closest known one (difflib), as `big_vision` users expect of
    a misspelt `--config.KEY`;
  * a value of the wrong type (an int is accepted for a float; a list for a tuple);
  * whatever the class's own `validate()` refuses (impossible values), called on every
    dataclass built, nested ones first.
`to_dict(obj)` is the inverse (JSON-ready: tuples become lists on the way to json).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import types
import typing
from typing import Any, Mapping, TypeVar

from jax_ssl.errors import ConfigError

T = TypeVar("T")


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
  """{field name: its resolved type annotation} of the dataclass `cls`."""
  hints = typing.get_type_hints(cls)
  return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def is_dataclass_type(hint: Any) -> bool:
  return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def unknown_key(key: str, known: list[str], prefix: str) -> ConfigError:
  """The one-line refusal of `prefix + key`, naming the closest of `known`."""
  close = difflib.get_close_matches(key, known, n=1)
  hint = f"did you mean '{prefix}{close[0]}'?" if close else f"allowed: {sorted(known)}"
  return ConfigError(f"config key '{prefix}{key}' is unknown; {hint}")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, prefix: str = "") -> T:
  """An instance of the frozen dataclass `cls` from `values` (missing keys: the defaults).

  Args:
    cls: a dataclass whose fields all have defaults.
    values: the keys to set (nested dataclass fields take nested mappings).
    prefix: the dotted path of `values` in the config ("method_args."), for the messages.

  Raises:
    ConfigError: one line naming an unknown key, a value of the wrong type, or what `validate()`
      of `cls` (or of a nested section) refuses.
  """
  values = dict(values or {})
  hints = field_types(cls)
  for key in values:
    if key not in hints:
      raise unknown_key(key, list(hints), prefix)
  kwargs = {key: coerce(hints[key], value, prefix + key) for key, value in values.items()}
  try:
    obj = cls(**kwargs)
  except TypeError as e:  # a field without default left out
    raise ConfigError(f"config section '{prefix.rstrip('.') or 'config'}': {e}") from None
  validate = getattr(obj, "validate", None)
  if callable(validate):
    validate()
  return obj


def _type_name(hint: Any) -> str:
  if hint is type(None):
    return "None"
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    return "/".join(_type_name(a) for a in typing.get_args(hint))
  if origin is not None:
    return getattr(origin, "__name__", str(origin))
  return getattr(hint, "__name__", str(hint))


def coerce(hint: Any, value: Any, key: str) -> Any:
  """`value` as the type `hint` of the config key `key` (dotted), or a one-line ConfigError."""
  def refuse():
    return ConfigError(f"{key}={value!r} has type {type(value).__name__}; expected "
                       f"{_type_name(hint)}")

  if hint is Any:
    return value
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    options = typing.get_args(hint)
    if value is None:
      if type(None) in options:
        return None
      raise refuse()
    for option in options:
      if option is type(None):
        continue
      try:
        return coerce(option, value, key)
      except ConfigError:
        continue
    raise refuse()
  if is_dataclass_type(hint):
    if dataclasses.is_dataclass(value) and isinstance(value, hint):
      return value
    if not isinstance(value, Mapping):
      raise ConfigError(f"config key '{key}' is a section; give it a dict of "
                        f"{sorted(field_types(hint))}, got {value!r}")
    return from_mapping(hint, value, key + ".")
  if hint is bool:
    if isinstance(value, bool):
      return value
    raise refuse()
  if hint is int:
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    raise refuse()
  if hint is float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
    raise refuse()
  if hint is str:
    if isinstance(value, str):
      return value
    raise refuse()
  if origin is tuple:
    if not isinstance(value, (tuple, list)):
      raise refuse()
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    if args and len(args) != len(value):
      raise ConfigError(f"{key}={tuple(value)!r} has {len(value)} entries; expected "
                        f"{len(args)} ({', '.join(map(_type_name, args))})")
    return tuple(coerce(a, item, f"{key}[{i}]") for i, (a, item) in enumerate(zip(args, value))
                 ) if args else tuple(value)
  if origin in (dict, collections.abc.Mapping) or hint in (dict, Mapping,
                                                             collections.abc.Mapping):
    if not isinstance(value, Mapping):
      raise refuse()
    return {str(k): v for k, v in value.items()}
  return value


def to_dict(obj: Any) -> Any:
  """A (nested) dataclass as plain dicts, tuples and scalars (what config.json holds)."""
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return {field.name: to_dict(getattr(obj, field.name)) for field in dataclasses.fields(obj)}
  if isinstance(obj, (tuple, list)):
    return tuple(to_dict(item) for item in obj)
  if isinstance(obj, Mapping):
    return {key: to_dict(value) for key, value in obj.items()}
  return obj


def check(ok: bool, message: str) -> None:
  """Raises ConfigError(message) unless `ok`: the one-liner of a `validate()`."""
  if not ok:
    raise ConfigError(message)


def check_positive(section: str, obj: Any, *names: str) -> None:
  """`validate()`'s line for fields that must be > 0: `<section>.<name>=<value>; must be > 0`."""
  for name in names:
    value = getattr(obj, name)
    check(value > 0, f"{section}.{name}={value!r}; must be > 0")
