"""The command line's config (jax_ssl/config/load.py, `python -m jax_ssl.train`): each mistake
in `--config PATH[:ARG]` or `--config.KEY=VALUE` is one line naming the closest valid name,
exit code 1, nothing written; overrides are typed like the values they replace; every
experiment file's get_config rejects an unknown argument; the runlocal smoke tests."""

import glob
import importlib.util
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from jax_ssl import config as config_lib
from jax_ssl import train
from jax_ssl.config import load
from jax_ssl.errors import ConfigError
from conftest import typed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIMCLR = "experiments/fashion_mnist/simclr.py"
FILES = sorted(f for f in glob.glob(os.path.join(ROOT, "experiments", "*", "*.py"))
               if not os.path.basename(f).startswith("_"))


def _module(path):
  spec = importlib.util.spec_from_file_location("experiment_" + os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("args, line", [
    ([f"--config={SIMCLR}:runlocal", "--config.totl_steps=5"],
     "error: config key 'totl_steps' is unknown (--config.totl_steps=5); did you mean "
     "'total_steps'?"),
    ([f"--config={SIMCLR}:runlocal", "--config.optimizer.learning_rate=0.1"],
     "error: config key 'optimizer.learning_rate' is unknown "
     "(--config.optimizer.learning_rate=0.1); did you mean 'optimizer.base_learning_rate'?"),
    (["--config", "experiments/fashion_mnist/simclrr.py"],
     "error: --config experiments/fashion_mnist/simclrr.py: no such experiment file; did you "
     "mean experiments/fashion_mnist/simclr.py?"),
    (["--config", f"{SIMCLR}:runlcoal"],
     "error: --config experiments/fashion_mnist/simclr.py:runlcoal: unknown argument "
     "'runlcoal'; did you mean 'runlocal'? this file accepts runlocal (several joined by ','), "
     "or none"),
    ([f"--config={SIMCLR}:runlocal", "--config.total_steps=abc"],
     "error: --config.total_steps=abc: total_steps takes an integer, e.g. "
     "--config.total_steps=20"),
    ([f"--config={SIMCLR}:runlocal", "--workdri=x"],
     "error: Unknown command line flag 'workdri'. Did you mean: workdir ?"),
], ids=["key", "nested_key", "file", "argument", "value", "flag"])
def test_config_mistakes_are_one_line_exit_1_and_write_nothing(args, line, tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "jax_ssl.train", *args, "--workdir", str(workdir)], cwd=ROOT,
      env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}, capture_output=True,
      text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [line]
  assert proc.stdout == ""
  assert not workdir.exists()


def test_report_without_the_eval_extra_is_one_line_before_training(tmp_path):
  """eval.report draws with matplotlib and scikit-learn ([eval]): without them the run stops
  before training, not with a traceback after it."""
  script = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            "sys.argv = ['jax_ssl.train'] + sys.argv[1:]; "
            "runpy.run_module('jax_ssl.train', run_name='__main__')")
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-c", script, f"--config={SIMCLR}:runlocal", "--config.eval.report=True",
       "--workdir", str(workdir)], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "error: eval.report=True needs matplotlib (not installed): pip install 'jax_ssl[eval]' "
      "(in a checkout: pip install -e '.[all]'), or pass --config.eval.report=False"]
  assert not workdir.exists()


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_experiment_file_rejects_an_unknown_argument(path):
  module = _module(path)
  with pytest.raises(ConfigError) as info:
    module.get_config("runlcoal")
  assert str(info.value).startswith(
      "unknown argument 'runlcoal'; did you mean 'runlocal'? this file accepts runlocal")
  assert str(info.value).endswith("(several joined by ','), or none")
  assert module.get_config("").total_steps == module.get_config().total_steps


def test_switches_are_comma_separated_and_listed_when_unknown():
  assert load.parse_switches("runlocal, vit_tiny", ("runlocal", "vit_tiny")) == {
      "runlocal", "vit_tiny"}
  assert load.parse_switches(None, ("runlocal",)) == frozenset()
  with pytest.raises(ConfigError, match=r"^unknown argument 'vit_tny'; did you mean 'vit_tiny'\? "
                     r"this file accepts runlocal, vit_tiny \(several joined by ','\), or none$"):
    load.parse_switches("runlocal,vit_tny", ("runlocal", "vit_tiny"))
  with pytest.raises(ConfigError, match=r"^unknown argument 'huge'; this file accepts runlocal "):
    load.parse_switches("huge", ("runlocal",))


def test_overrides_are_typed_like_the_values_they_replace():
  config = load.load_experiment(f"{SIMCLR}:runlocal")
  del config.optimizer["weight_decay"]
  config.optimizer.weight_decay = 0  # an int where the schema takes any number
  config.method_args = ml_collections.ConfigDict()  # temperature left at simclr's default
  load.apply_overrides(config, [
      ("total_steps", "7"), ("optimizer.base_learning_rate", "1e-3"),
      ("optimizer.weight_decay", "1e-4"), ("evaluate", "false"), ("online_probe", None),
      ("augment.crop_scale", "(0.3, 1.0)"), ("eval.low_label_seeds", "4"),
      ("dataset.data_dir", "/tmp/tfds"), ("model.depth", "3"), ("model.width", "None"),
      ("eval.protocols", "knn,linear"), ("method_args.temperature", "1"),
      ("augment.local_crops.overrides.blur_prob", "1")])
  assert config.total_steps == 7 and isinstance(config.total_steps, int)
  assert config.optimizer.base_learning_rate == 1e-3
  assert config.optimizer.weight_decay == 1e-4
  assert config.evaluate is False and config.online_probe is True
  assert config.augment.crop_scale == (0.3, 1.0) and config.eval.low_label_seeds == (4,)
  assert config.dataset.data_dir == "/tmp/tfds" and config.model.depth == 3
  assert config.model.width is None and config.eval.protocols == "knn,linear"
  # Keys new to method_args / local-crop overrides take the type of the default they replace.
  assert config.method_args.temperature == 1.0 and isinstance(config.method_args.temperature,
                                                                float)
  assert config.augment.local_crops.overrides.blur_prob == 1.0
  load.apply_overrides(config, [("noevaluate", None), ("evaluate", "True")])
  assert config.evaluate is True


@pytest.mark.parametrize("key, value, message", [
    ("evaluate", "maybe", "--config.evaluate=maybe: evaluate takes True or False"),
    ("optimizer.base_learning_rate", "fast",
     "--config.optimizer.base_learning_rate=fast: optimizer.base_learning_rate takes a number, "
     "e.g. --config.optimizer.base_learning_rate=0.004"),
    ("augment.crop_scale", "big", "--config.augment.crop_scale=big: augment.crop_scale takes a "
                                  "tuple, e.g. --config.augment.crop_scale=\"(0.2, 1.0)\""),
    ("model", "vit", "--config.model=vit: 'model' is a section; set one of its keys, e.g. "
                     "--config.model.backbone=..."),
    ("total_steps", None, "--config.total_steps: needs a value, e.g. --config.total_steps=20"),
    ("heads.projector_hiden_dim", "8", "config key 'heads.projector_hiden_dim' is unknown "
                                       "(--config.heads.projector_hiden_dim=8); did you mean "
                                       "'heads.projector_hidden_dim'?"),
    ("optimiser.base_learning_rate", "1", "config key 'optimiser.base_learning_rate' is unknown "
     "(--config.optimiser.base_learning_rate=1); did you mean 'optimizer.base_learning_rate'?"),
    ("optimizer.lr", "1", "config key 'optimizer.lr' is unknown (--config.optimizer.lr=1); the "
                          "keys of 'optimizer' are base_learning_rate, beta2, lr_scaling, "
                          "momentum, name, trust_coefficient, warmup_steps, weight_decay, "
                          "weight_decay_end"),
])
def test_bad_overrides_are_one_line(key, value, message):
  config = load.load_experiment(f"{SIMCLR}:runlocal")
  with pytest.raises(ConfigError) as info:
    load.apply_overrides(config, [(key, value)])
  assert str(info.value) == message


def test_split_overrides_keeps_the_other_flags():
  rest, overrides = load.split_overrides(
      ["--config", "x.py", "--config.a=1", "--workdir", "w", "--config.b", "2", "--config.c",
       "--verbosity=0", "-config.d=(1, 2)", "--", "--config.e=5"])
  assert rest == ["--config", "x.py", "--workdir", "w", "--verbosity=0", "--", "--config.e=5"]
  assert overrides == [("a", "1"), ("b", "2"), ("c", None), ("d", "(1, 2)")]


def test_installed_experiment_files_are_found_from_any_directory(tmp_path, monkeypatch):
  """Where only the wheel is installed, `--config experiments/...` finds the files shipped as
  the package jax_ssl_experiments (pyproject.toml)."""
  package = tmp_path / "site" / load.EXPERIMENTS_PACKAGE
  (package / "fashion_mnist").mkdir(parents=True)
  (package / "__init__.py").write_text("")
  (package / "fashion_mnist" / "__init__.py").write_text("")
  (package / "fashion_mnist" / "only_installed.py").write_text(
      "import ml_collections\n\n\ndef get_config(arg=None):\n"
      "  return ml_collections.ConfigDict({'arg': arg})\n")
  monkeypatch.syspath_prepend(str(tmp_path / "site"))
  monkeypatch.chdir(tmp_path)
  config = load.load_experiment("experiments/fashion_mnist/only_installed.py:runlocal")
  assert config.arg == "runlocal"
  assert str(package) in load.experiment_roots()
  # The repository's own files are found from another directory too.
  assert load.load_experiment(f"{SIMCLR}:runlocal").total_steps == 20


def test_readme_dino_vit_tiny_trains_a_step(fake_fmnist, tmp_path):
  """README's ViT example on experiments/fashion_mnist/dino.py: the `vit_tiny` switch (the
  CNN recipe's 512-d final conv exists for ResNets only, so the backbone alone is refused)."""
  refused = load.load_experiment("experiments/fashion_mnist/dino.py:runlocal")
  load.apply_overrides(refused, [("model.backbone", "vit_tiny")])
  with pytest.raises(ConfigError, match=r"model.final_features=512: .* \(use 0 with "
                                        r"model.backbone='vit_tiny'\)"):
    config_lib.validate(typed(refused), device_count=1)

  full = typed(load.load_experiment("experiments/fashion_mnist/dino.py:vit_tiny"))
  config_lib.validate(full, device_count=1)
  assert (full.model.backbone, full.model.depth, full.total_steps) == ("vit_tiny", None, 1300)

  config = load.load_experiment("experiments/fashion_mnist/dino.py:runlocal,vit_tiny")
  source_dir, data_dir = fake_fmnist
  load.apply_overrides(config, [
      ("dataset.source_dir", source_dir), ("dataset.data_dir", data_dir), ("total_steps", "1"),
      ("global_batch_size", "16"), ("evaluate", "False")])
  experiment = typed(config)
  assert experiment.model.backbone == "vit_tiny" and experiment.model.final_features == 0
  assert (experiment.augment.local_crops.num, experiment.augment.local_crops.output_size) == (
      2, 12)
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out["step"] == 1
  (record,) = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert np.isfinite(record["loss"]) and record["loss"] > 0


@pytest.mark.parametrize("name", ["simclr", "mae"])
def test_runlocal_evaluates_every_protocol_on_a_quick_subset(name):
  """`:runlocal` runs the same protocols as the full recipe on 2000 / 1000 images, without
  the baselines, the extra low-label subsets and the report (t-SNE): README's smoke test."""
  full = typed(load.load_experiment(f"experiments/fashion_mnist/{name}.py"))
  local = typed(load.load_experiment(f"experiments/fashion_mnist/{name}.py:runlocal"))
  assert local.eval.protocols == full.eval.protocols
  assert (local.eval.train_limit, local.eval.test_limit) == (2000, 1000)
  assert local.eval.report is False and local.eval.baselines is False
  assert tuple(local.eval.low_label_seeds) == (0,)
  assert full.eval.report is True and full.eval.baselines is True
