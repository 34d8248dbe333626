"""The typed experiment (jax_ssl/config/schema.py, typed.py, saved.py): every experiment file
and every saved run converts, and every mistake is one line naming the key."""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import pytest

from jax_ssl.config import load, saved, schema, typed
from jax_ssl.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = sorted(os.path.relpath(f, ROOT) for f in glob.glob(os.path.join(
    ROOT, "experiments", "*", "*.py")) if not os.path.basename(f).startswith("_"))
SAVED = sorted(glob.glob(os.path.join(ROOT, "results", "*", "config.json")))


@dataclasses.dataclass(frozen=True)
class _Inner:
  size: int = 1
  scale: tuple[float, float] = (0.1, 1.0)


@dataclasses.dataclass(frozen=True)
class _Outer:
  rate: float = 0.5
  name: str | None = None
  inner: _Inner = _Inner()

  def validate(self):
    typed.check(self.rate > 0, f"rate={self.rate}; must be > 0")


def test_from_mapping_types_fills_defaults_and_coerces():
  outer = typed.from_mapping(_Outer, {"rate": 2, "inner": {"scale": [0.2, 0.3]}})
  assert outer == _Outer(rate=2.0, inner=_Inner(size=1, scale=(0.2, 0.3)))
  assert isinstance(outer.rate, float) and isinstance(outer.inner.scale, tuple)
  assert typed.to_dict(outer) == {"rate": 2.0, "name": None, "inner": {"size": 1,
                                                                       "scale": (0.2, 0.3)}}


@pytest.mark.parametrize("values, message", [
    ({"rtae": 1.0}, "config key 'rtae' is unknown; did you mean 'rate'?"),
    ({"inner": {"szie": 2}}, "config key 'inner.szie' is unknown; did you mean 'inner.size'?"),
    ({"rate": "fast"}, "rate='fast' has type str; expected float"),
    ({"rate": True}, "rate=True has type bool; expected float"),
    ({"inner": {"size": 1.5}}, "inner.size=1.5 has type float; expected int"),
    ({"inner": {"scale": [1.0]}}, "inner.scale=(1.0,) has 1 entries; expected 2"),
    ({"inner": 3}, "config key 'inner' is a section"),
    ({"rate": -1}, "rate=-1.0; must be > 0"),
])
def test_from_mapping_refuses_in_one_line(values, message):
  with pytest.raises(ConfigError) as e:
    typed.from_mapping(_Outer, values)
  assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("changes, message", [
    ({"backend": "gpu"}, "backend='gpu'; use 'auto', 'xla' or 'cpu_kernels'"),
    ({"optimizer": {"name": "adam"}}, "optimizer.name='adam'; use 'lars', 'adamw' or 'sgd'"),
    ({"eval": {"finetune": {"layer_decay": 0.0}}}, "eval.finetune.layer_decay=0.0; must be in"),
    ({"augment": {"crop_scale": (0.5, 0.2)}}, "augment.crop_scale=(0.5, 0.2); need 0 < low"),
    ({"total_steps": 0}, "total_steps=0; must be a positive integer"),
    ({"modle": {}}, "config key 'modle' is unknown; did you mean 'model'?"),
    ({"method": "simclrr"}, "method='simclrr' is unknown"),
])
def test_experiment_refuses_in_one_line(changes, message):
  with pytest.raises(ConfigError) as e:
    schema.Experiment.from_config({"method": "simclr", **changes})
  assert message in str(e.value) and "\n" not in str(e.value)


def test_defaults_are_the_schema():
  experiment = schema.Experiment.from_config({"method": "simclr"})
  assert experiment.model.backbone == "resnet50" and experiment.augment.output_size == 224
  assert experiment.backend == "auto" and experiment.eval.finetune.steps == 500
  assert dataclasses.is_dataclass(experiment.method_args)
  # Frozen: nothing below the entry point changes it.
  with pytest.raises(dataclasses.FrozenInstanceError):
    experiment.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("experiment_file", EXPERIMENTS)
def test_every_experiment_file_converts_and_round_trips(experiment_file):
  for spec in (experiment_file, experiment_file + ":runlocal"):
    config = load.load_experiment(os.path.join(ROOT, spec))
    experiment = schema.Experiment.from_config(config)
    assert experiment.method == config.method
    assert experiment.total_steps == config.total_steps
    # What config.json holds reads back to the same typed experiment.
    again = schema.Experiment.from_config(json.loads(json.dumps(experiment.to_dict())))
    assert again == experiment


@pytest.mark.parametrize("config_json", SAVED, ids=[os.path.basename(os.path.dirname(p))
                                                    for p in SAVED])
def test_saved_runs_in_the_repository_convert(config_json):
  with open(config_json) as f:
    values = json.load(f)
  experiment = saved.from_saved(values)
  assert experiment.method == values["method"]
  assert experiment.total_steps == values["total_steps"]
  # What the run set is what the typed experiment holds (defaults fill only what it lacks).
  # (Through JSON, so tuples and lists compare equal; floats exactly, as JSON round-trips them.)
  held = json.loads(json.dumps(typed.to_dict(experiment.method_args)))
  assert held == {**held, **values["method_args"]}
  assert experiment.model.backbone == values["model"]["backbone"]


def test_saved_defaults_are_what_old_runs_used():
  experiment = saved.from_saved({"method": "simclr", "eval": {"low_label_fraction": 0.1}})
  assert experiment.eval.encoder == "online" and experiment.eval.crop_fraction == 1.0
  assert experiment.eval.protocols == "knn,linear,lowlabel-10%"
  assert experiment.dataset.host_crops is False and experiment.dataset.num_workers == 0
