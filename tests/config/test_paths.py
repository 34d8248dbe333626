"""jax_ssl/config/paths.py: the paths a user gives, made absolute where they enter."""

import dataclasses

import ml_collections

from conftest import tiny_config, typed
from jax_ssl.config import paths


def test_config_paths_become_absolute_relative_to_the_current_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = tiny_config("idx", "tfds")
  config.method = "beit+rotation"
  config.method_args = ml_collections.ConfigDict(
      {"beit": {"tokenizer_workdir": "runs/vq", "mask_ratio": 0.4}, "rotation": {"weight": 1.0}})
  config.heads = ml_collections.ConfigDict()  # simclr's head keys are not beit+rotation's
  experiment = typed(config)
  resolved = paths.with_absolute_paths(experiment)
  assert resolved.dataset.data_dir == f"{tmp_path}/tfds"
  assert resolved.dataset.source_dir == f"{tmp_path}/idx"
  assert resolved.method_args.beit.tokenizer_workdir == f"{tmp_path}/runs/vq"
  assert resolved.method_args.beit.mask_ratio == 0.4 and resolved.method_args.rotation.weight == 1
  assert experiment.dataset.data_dir == "tfds"  # the caller's config is not changed
  assert experiment.method_args.beit.tokenizer_workdir == "runs/vq"
  # Unset paths keep meaning "the default"; absolute ones and ~ are kept / expanded.
  experiment = experiment.replace(
      dataset={"data_dir": None, "source_dir": "/usr/share/datasets/fashion-mnist"},
      method_args=dataclasses.replace(experiment.method_args, beit=dataclasses.replace(
          experiment.method_args.beit, tokenizer_workdir="")))
  resolved = paths.with_absolute_paths(experiment)
  assert resolved.dataset.data_dir is None and resolved.method_args.beit.tokenizer_workdir == ""
  assert resolved.dataset.source_dir == "/usr/share/datasets/fashion-mnist"
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert paths.absolute_path("~/runs/a") == f"{tmp_path}/home/runs/a"
