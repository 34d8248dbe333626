"""The online linear probe (config.online_probe): it learns from the labels, its gradient
never reaches the backbone, it is part of the checkpointed TrainState."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import trainer_subprocess as ts
from conftest import state_and_step, tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import train
from jax_ssl.errors import ConfigError


def _flat(tree):
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _one_step(online_probe: bool, images, labels):
  # Two micro-batches: the labels are split like the views (the trainer's test run below
  # covers the step without accumulation).
  config = tiny_config("unused", "unused", online_probe=online_probe, grad_accum_steps=2)
  config.optimizer.update(name="sgd", warmup_steps=0)
  _, _, _, state, step = state_and_step(config, num_classes=10, online_probe=online_probe)
  batch = {"image": images, "label": labels} if online_probe else {"image": images}
  before = _flat(state.params)
  new_state, metrics = step(state, batch, jax.random.key_data(jax.random.key(0)))
  return before, _flat(new_state.params), _flat(new_state.batch_stats), metrics


def test_probe_gradient_does_not_reach_the_backbone():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, (32,)).astype(np.int32)
  initial, without, stats_without, metrics_without = _one_step(False, images, labels)
  initial_probe, with_probe, stats_with, metrics_with = _one_step(True, images, labels)
  probe_keys = [k for k in with_probe if "online_probe" in k]
  assert len(probe_keys) == 2  # kernel and bias of the linear probe
  assert set(with_probe) - set(probe_keys) == set(without)
  for key, value in without.items():
    # Same initial weights (the probe is built after the method's heads) ...
    np.testing.assert_array_equal(initial_probe[key], initial[key])
    # ... and the same SGD update, i.e. the same gradient, with or without the probe.
    np.testing.assert_allclose(with_probe[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
  assert all(np.abs(without[k] - initial[k]).max() > 0 for k in without if "backbone" in k)
  for key, value in stats_without.items():  # the probe's forward pass updates no BatchNorm
    np.testing.assert_allclose(stats_with[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
  for key in probe_keys:  # the probe itself learns
    assert np.abs(with_probe[key] - initial_probe[key]).max() > 0
  # The logged loss is the method's; the probe's is logged separately.
  assert float(metrics_with["loss"]) == pytest.approx(float(metrics_without["loss"]), rel=1e-5)
  assert float(metrics_with["online_probe/loss"]) > 0
  assert "online_probe/loss" not in metrics_without


def test_probe_accuracy_rises_and_the_probe_is_checkpointed(fake_fmnist, tmp_path):
  config = tiny_config(*fake_fmnist, total_steps=40, checkpoint_every_steps=100,
                       online_probe=True)
  # Near-identity views: the class (a bar's row) stays visible to the probe.
  config.augment.update(crop_scale=(1.0, 1.0), jitter_prob=0.0)
  train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  accuracy = [r["online_probe/accuracy"] for r in records]
  assert len(accuracy) == 40 and all("online_probe/loss" in r for r in records)
  assert np.mean(accuracy[:5]) < 0.3  # chance is 0.1
  assert np.mean(accuracy[-10:]) > 0.6
  assert np.mean([r["online_probe/loss"] for r in records[-10:]]) < records[0]["online_probe/loss"]
  _, params = ts.final_params(tmp_path)
  assert {k for k in params if "online_probe" in k} == {"/heads/online_probe/kernel/value",
                                                        "/heads/online_probe/bias/value"}
  # The probe is part of the state: a run without it cannot resume this workdir.
  without = tiny_config(*fake_fmnist, total_steps=41, online_probe=False)
  with pytest.raises(ConfigError, match=r"written for another model \(online_probe: True -> False\); "
                                        r"use a new --workdir, or --config.online_probe=True"):
    train.train_and_evaluate(without, str(tmp_path))


def test_probe_needs_labels():
  config = tiny_config("unused", "unused", online_probe=True)
  with pytest.raises(ConfigError, match="online_probe=True needs class labels.*online_probe=False"):
    config_lib.build_model(typed(config), 1, 0, num_classes=None)
