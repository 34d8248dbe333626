"""Every shipped experiment file (each documented get_config arg) passes validation, and
typos or impossible values are reported as one line naming the key."""

import glob
import importlib.util
import os

import pytest

from conftest import typed
from jax_ssl import config as config_lib
from jax_ssl.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "*", "*.py")))
FILES = [f for f in FILES if not os.path.basename(f).startswith("_")]


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_there_are_experiment_files():
  assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
@pytest.mark.parametrize("arg", [None, "runlocal"])
def test_experiment_file_validates(path, arg):
  module = _load(path)
  assert "python -m jax_ssl.train" in module.__doc__  # the launch command is documented
  config = typed(module.get_config(arg))
  config_lib.validate(config, device_count=1)
  config_lib.validate(config, device_count=8) if config.global_batch_size % 8 == 0 else None
  if arg == "runlocal":  # the laptop smoke test stays seconds long
    assert config.total_steps <= 50 and config.global_batch_size <= 64


def _main_config():
  return _load(os.path.join(ROOT, "experiments", "fashion_mnist", "simclr.py")).get_config()


@pytest.mark.parametrize("mutate, message", [
    (lambda c: setattr(c, "optimiser", c.optimizer), "config key 'optimiser' is unknown; did you mean 'optimizer'?"),
    (lambda c: c.augment.__setattr__("crop_scal", (0.2, 1.0)), "config key 'augment.crop_scal' is unknown; did you mean 'augment.crop_scale'?"),
    (lambda c: c.eval.__setattr__("knn_k", 0), "eval.knn_k=0; must be positive"),
    (lambda c: c.model.__setattr__("stem", "tiny"), "model.stem='tiny'"),
    (lambda c: c.model.update(backbone="vit_tiny", final_features=64), "model.final_features=64: a final 1x1 conv of that width exists for the ResNets only"),
    (lambda c: c.augment.__setattr__("crop_scale", (0.5, 0.2)), r"augment.crop_scale=\(0.5, 0.2\); need 0 < low <= high <= 1"),
    (lambda c: c.augment.__setattr__("flip_prob", 1.5), r"augment.flip_prob=1.5; must be in \[0, 1\]"),
    (lambda c: c.optimizer.__setattr__("warmup_steps", -5), "optimizer.warmup_steps=-5; must be >= 0"),
    (lambda c: c.__setattr__("grad_accum_steps", 3), "grad_accum_steps=3 with global_batch_size=256 on 1 devices: the batch must split"),
    (lambda c: c.method_args.__setattr__("temprature", 0.1), "config key 'method_args.temprature' is unknown; did you mean 'method_args.temperature'?"),
])
def test_bad_config_is_one_line_naming_the_key(mutate, message):
  config = _main_config()
  config.unlock()
  mutate(config)
  with pytest.raises(ConfigError, match=message) as info:
    config_lib.validate(typed(config), device_count=1)
  assert "\n" not in str(info.value)


def test_crop_larger_than_the_image():
  config = _main_config()
  config.augment.output_size = 32
  with pytest.raises(ConfigError, match="augment.output_size=32 is larger than the 28px images"):
    config_lib.validate_against_data(typed(config), (28, 28, 1))
