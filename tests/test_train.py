import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import tiny_config, typed
from experiments.cifar10 import simclr_resnet18
from jax_ssl.state import split_model
from jax_ssl import train


def test_one_step_under_mock_cifar10(tmp_path):
  config = simclr_resnet18.get_config("runlocal")
  config.model.width = 4
  config.total_steps = 1
  # One low-label subset, no report: the 3072-dim raw-pixel probes dominate the time.
  config.eval.update(train_limit=64, test_limit=32, batch_size=32, knn_k=5, low_label_seeds=(0,),
                     report=False)
  with tfds.testing.mock_data(num_examples=64):
    out = train.train_and_evaluate(config, str(tmp_path))
  assert out["step"] == 1 and int(out["state"].step) == 1
  (record,) = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert record["step"] == 1 and np.isfinite(record["loss"])
  assert record["loss"] > 0 and record["learning_rate"] >= 0 and record["images_per_second"] > 0
  results = json.load(open(tmp_path / "results.json"))
  assert results["method"] == "simclr" and results["dataset"] == "cifar10" and results["steps"] == 1
  for scores in (results, results["baselines"]["raw_pixels"], results["baselines"]["random_init"]):
    for key in ("knn_top1", "linear_top1", "linear_1pct_top1"):
      assert 0.0 <= scores[key] <= 1.0
    # RankMe of the test features beside each baseline's (32 rows: at most 32)
    assert scores["diagnostics"]["examples"] == 32 and 1 <= scores["diagnostics"]["rankme"] <= 32
  assert results["baselines"]["raw_pixels"]["diagnostics"]["dim"] == 32 * 32 * 3


def test_training_lowers_the_loss_and_moves_every_parameter(fake_fmnist, tmp_path):
  config = tiny_config(*fake_fmnist, total_steps=40, checkpoint_every_steps=100)
  config.optimizer.base_learning_rate = 4e-3
  initial = train.config_lib.build_model(typed(config), 1, typed(config).seed)
  out = train.train_and_evaluate(config, str(tmp_path))
  losses = [json.loads(l)["loss"] for l in open(tmp_path / "metrics.jsonl")]
  assert len(losses) == 40
  assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])
  before = jax.tree.leaves(split_model(initial)[1])
  after = jax.tree.leaves(out["state"].params)
  assert all(not np.allclose(a, b) for a, b in zip(before, after))
  assert os.path.isdir(tmp_path / "tensorboard") and os.listdir(tmp_path / "tensorboard")


def test_bad_config_values_fail_before_training_with_one_line(fake_fmnist, tmp_path):
  cases = {
      ("global_batch_size", 30): "global_batch_size=30 is not divisible by the 8 devices",
      ("method", "simclrr"): "method='simclrr' is unknown",
      ("model.backbone", "resnet19"): "model.backbone='resnet19'",
      ("optimizer.base_learning_rate", -0.1): "optimizer.base_learning_rate=-0.1; must be > 0",
  }
  for (key, value), message in cases.items():
    config = tiny_config(*fake_fmnist)
    config.update_from_flattened_dict({key: value})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
      train.train_and_evaluate(config, str(tmp_path / "bad"))
    assert "\n" not in str(info.value)
  assert not os.path.exists(tmp_path / "bad" / "checkpoints")


def test_cli_reports_missing_data_in_one_line(tmp_path):
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  import trainer_subprocess as ts  # pylint: disable=g-import-not-at-top
  proc = subprocess.run(
      [sys.executable, "-m", "jax_ssl.train", "--config",
       os.path.join(ts.ROOT, "experiments/fashion_mnist/simclr.py:runlocal"),
       "--workdir", str(tmp_path / "run"), f"--config.dataset.source_dir={tmp_path}/nothing",
       f"--config.dataset.data_dir={tmp_path}/tfds"],
      env={**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: Fashion-MNIST IDX files not found")
  assert "apt-get install -y dataset-fashion-mnist" in last
  assert "Traceback" not in proc.stderr


def _all_finite(tree):
  return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(tree))


def test_nonfinite_loss_stops_at_that_step_and_keeps_the_last_checkpoint(fake_fmnist, tmp_path):
  from jax_ssl.errors import NonFiniteError  # pylint: disable=g-import-not-at-top
  import trainer_subprocess as ts  # pylint: disable=g-import-not-at-top
  config = tiny_config(*fake_fmnist, total_steps=12, checkpoint_every_steps=1)
  config.optimizer.base_learning_rate = 1e35  # blows up within a few steps
  config.optimizer.warmup_steps = 1
  with pytest.raises(NonFiniteError, match=r"non-finite loss .* at step (\d+); stopped") as info:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(info.value)
  bad_step = int(message.split("at step ")[1].split(";")[0])
  assert 1 < bad_step <= 12 and "skip_nonfinite_updates" in message
  saved = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert saved[-1] == bad_step - 1  # nothing saved at or after the bad step
  step, params = ts.final_params(tmp_path)
  assert step == bad_step - 1 and _all_finite(params)


def test_nonfinite_updates_can_be_skipped(fake_fmnist, tmp_path):
  config = tiny_config(*fake_fmnist, total_steps=8, checkpoint_every_steps=100,
                       skip_nonfinite_updates=True)
  config.optimizer.base_learning_rate = 1e35
  config.optimizer.warmup_steps = 1
  out = train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert out["step"] == 8 and records[-1]["skipped_updates"] >= 1
  assert _all_finite(out["state"].params)


def test_workdir_from_another_model_refuses_to_resume(fake_fmnist, tmp_path):
  from jax_ssl.errors import ConfigError  # pylint: disable=g-import-not-at-top
  train.train_and_evaluate(tiny_config(*fake_fmnist, total_steps=2), str(tmp_path))
  wider = tiny_config(*fake_fmnist, total_steps=4)
  wider.model.width = 8
  with pytest.raises(ConfigError, match=r"another model \(model.width: 4 -> 8\); use a new --workdir"):
    train.train_and_evaluate(wider, str(tmp_path))
  # The same model with a longer schedule resumes.
  out = train.train_and_evaluate(tiny_config(*fake_fmnist, total_steps=4), str(tmp_path))
  assert out["step"] == 4


def test_unwritable_workdir_is_one_clear_error(fake_fmnist, tmp_path):
  from jax_ssl.errors import DataError  # pylint: disable=g-import-not-at-top
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(DataError, match=r"--workdir .*a_file/run is not writable .*choose a writable"):
    train.train_and_evaluate(tiny_config(*fake_fmnist), str(blocker / "run"))


def test_train_step_compiles_once_and_reports_compile_time_and_data_wait(fake_fmnist, tmp_path):
  """The step compiles once however many steps run (a per-step or second-step recompile, e.g.
  from a weak-typed or re-sharded state, would add compiles), and the first record reports the
  compile time; every record reports the share of time spent waiting for data."""
  from jax_ssl import perf  # pylint: disable=g-import-not-at-top
  perf.cpu_peak_flops_per_second()  # the MFU's CPU peak: one matmul compile per process, first
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, duration, **_: compiles.append(event)
      if event == "/jax/core/compile/backend_compile_duration" else None)
  counts = {}
  for steps in (2, 7):
    start = len(compiles)
    train.train_and_evaluate(tiny_config(*fake_fmnist, total_steps=steps, checkpoint_every_steps=100),
                             str(tmp_path / f"run{steps}"))
    counts[steps] = len(compiles) - start
    records = [json.loads(l) for l in open(tmp_path / f"run{steps}" / "metrics.jsonl")]
    assert len(records) == steps
    assert records[0]["compile_seconds"] > 0
    assert all("compile_seconds" not in r for r in records[1:])
    assert all(0.0 <= r["data_wait_fraction"] < 1.0 for r in records)
  assert counts[2] == counts[7] > 0, counts
