"""The experiment's configuration: read once, at the entry point, into typed values.

`load.py` loads an experiment file (`--config PATH[:ARG]`) and `overrides.py` applies the
`--config.KEY=VALUE` flags, typed by the schema; `schema.py` holds the frozen dataclasses
whose defaults are the schema (`Experiment.from_config` turns a config into them, checking
every key), `checks.py` the checks across sections, `saved.py` reads saved runs'
config.json of any version, `resume.py` decides whether a workdir can be resumed, and
`build.py` makes the run's objects (method, views, model, optimizer) from the typed values.
Nothing below the entry point reads a ConfigDict.

The submodules are imported on first use (PEP 562): methods import `typed.check` from here
without pulling in the builders, which import the methods.
"""

import importlib

_EXPORTS = {
    "Experiment": "schema", "from_saved": "saved", "read_saved": "saved",
    "validate": "checks", "validate_against_data": "checks",
    "BuiltMethod": "build", "build_backbone": "build", "build_method": "build",
    "build_model": "build", "build_optimizer": "build", "evaluation_encoder": "build",
    "clip_sampling": "build",
    "init_method_state": "build", "view_configs": "build",
    "HISTORY_FILE": "resume", "SCHEDULE_KEYS": "resume", "STATE_KEYS": "resume",
    "Resume": "resume", "check_resume_compatible": "resume", "describe_changes": "resume",
    "record_config": "resume",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    return getattr(importlib.import_module(f"jax_ssl.config.{_EXPORTS[name]}"), name)
  raise AttributeError(f"module 'jax_ssl.config' has no attribute {name!r}")
