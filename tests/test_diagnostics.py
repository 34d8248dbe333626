"""Collapse diagnostics (issue 28, item 7): RankMe and the normalised std on hand-built
matrices, the collapse warning, and the trainer's diagnostics of the training batch (exact,
asynchronous, the same on 1 and 8 devices, logged every N steps)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import batch_images, state_and_step, tiny_config, typed
from jax_ssl import config as config_lib, diagnostics, sharding, train
from jax_ssl.data import augment
from jax_ssl.state import encoder_weights
from jax_ssl.step import make_feature_fn


def _with_singular_values(values, rows, seed=0):
  """A [rows, len(values)] matrix U diag(values) V^T with random orthonormal U, V."""
  rng = np.random.default_rng(seed)
  u, _ = np.linalg.qr(rng.normal(size=(rows, len(values))))
  v, _ = np.linalg.qr(rng.normal(size=(len(values), len(values))))
  return (u * np.asarray(values)) @ v.T


def test_rankme_of_hand_built_matrices():
  # Equal singular values: p_k = 1/8 each, exp(entropy) = 8 (up to RankMe's eps).
  assert float(diagnostics.rankme(np.eye(8))) == pytest.approx(8.0, rel=1e-5)
  assert float(diagnostics.rankme(_with_singular_values([2.0] * 6, 20))) == pytest.approx(
      6.0, rel=1e-4)
  # Rank 1 (every row on one line): 1.
  rng = np.random.default_rng(1)
  rank_one = np.outer(rng.normal(size=32), rng.normal(size=16))
  assert float(diagnostics.rankme(rank_one)) == pytest.approx(1.0, abs=1e-3)
  # Singular values (3, 1): p = (0.75, 0.25), entropy 0.75 ln(4/3) + 0.25 ln 4 = 0.56233,
  # exp = 1.75477.
  assert float(diagnostics.rankme(_with_singular_values([3.0, 1.0], 10))) == pytest.approx(
      1.75477, rel=1e-4)
  # Scale does not matter; sharded over 8 devices the same number (the SVD under jit).
  mesh = sharding.make_mesh(8)
  sharded = jax.device_put(jnp.asarray(5 * rank_one + np.eye(32, 16), jnp.float32),
                           sharding.batch_sharding(mesh))
  assert float(jax.jit(diagnostics.rankme)(sharded)) == pytest.approx(
      float(diagnostics.rankme(rank_one + np.eye(32, 16) / 5)), rel=1e-4)


def test_normalized_std_on_known_arrays():
  # +-e1, +-e2 (any positive scale per row): each dimension takes 1, 0, -1, 0 -> std
  # sqrt(1/2); mean over the 2 dimensions sqrt(1/2); x sqrt(2) = 1 (healthy).
  rows = np.array([[3.0, 0], [0, 0.5], [-2, 0], [0, -7]])
  metrics = diagnostics.collapse_metrics(rows)
  assert float(metrics["embedding_std"]) == pytest.approx(math.sqrt(0.5), rel=1e-6)
  assert float(metrics["embedding_std_scaled"]) == pytest.approx(1.0, rel=1e-6)
  # RankMe reads the raw rows: singular values sqrt(13), sqrt(49.25); unit rows: equal ones.
  assert float(metrics["rankme_fraction"]) < 0.96
  unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
  unit_fraction = float(diagnostics.collapse_metrics(unit)["rankme_fraction"])
  assert unit_fraction == pytest.approx(1.0, rel=1e-5)
  # One direction at different scales: a collapse to a point of the sphere: 0.
  collapsed = np.outer([1.0, 2.0, 5.0, 0.1], [0.6, 0.8])
  assert float(diagnostics.normalized_std(collapsed)) == pytest.approx(0.0, abs=1e-7)
  # Isotropic Gaussian rows: ~1 / sqrt(d).
  gaussian = np.random.default_rng(0).normal(size=(4000, 64))
  assert float(diagnostics.normalized_std(gaussian)) * 8 == pytest.approx(1.0, abs=0.02)


def test_collapse_warning_is_one_line_for_collapsed_embeddings_only(monkeypatch):
  lines = []
  monkeypatch.setattr(diagnostics.logging, "warning", lambda fmt, *a: lines.append(fmt % a))
  rng = np.random.default_rng(0)
  healthy = {k: float(v) for k, v in diagnostics.collapse_metrics(
      rng.normal(size=(256, 32))).items()}
  assert not diagnostics.warn_if_collapsed(healthy, "x") and not lines
  # Every embedding the same vector plus float noise: rank ~1, std ~0.
  point = np.ones((256, 32)) + 1e-6 * rng.normal(size=(256, 32))
  collapsed = {k: float(v) for k, v in diagnostics.collapse_metrics(point).items()}
  assert diagnostics.warn_if_collapsed(collapsed, "step 500")
  (line,) = lines
  assert "\n" not in line and line.startswith("representation collapse at step 500: rankme")
  assert "< 0.1 (healthy ~1)" in line
  # Dimensional collapse (rank 2 of 64 dimensions, spread out): the rank alone warns.
  flat = {k: float(v) for k, v in diagnostics.collapse_metrics(
      rng.normal(size=(256, 2)) @ rng.normal(size=(2, 64))).items()}
  assert flat["embedding_std_scaled"] > 0.1
  assert "rankme" in diagnostics.collapse_warning(flat, "x")


def _initial_state_and_batch(config, mesh):
  """The initial TrainState (as after a step: state.step 1), a batch and the run's key, on
  `mesh` (no train step compiled: the diagnostics read only the weights)."""
  _, graphdef, _, state, _ = state_and_step(config)
  state = sharding.replicate(state.replace(step=jnp.ones((), jnp.int32)), mesh)
  batch = {"image": jax.device_put(batch_images(config)["image"], sharding.batch_sharding(mesh))}
  return graphdef, state, batch, sharding.replicate(jax.random.key_data(jax.random.key(0)), mesh)


def test_train_diagnostics_exact_asynchronous_and_the_same_on_one_and_eight_devices(
    monkeypatch):
  config = typed(tiny_config("unused", "unused"))
  views = config_lib.view_configs(config)
  # The batch sharded over 8 devices.
  graphdef, state, batch, rng = _initial_state_and_batch(config, sharding.make_mesh(8))
  collapse = diagnostics.TrainDiagnostics(graphdef, views[0], every_steps=2, encoder="online")
  assert collapse.after_step(2, state, batch, rng) >= 0.0  # compiles and dispatches
  # Dispatching reads nothing back to the host (no wait for the device between log steps).
  array_type = type(jnp.zeros(()))
  value, reads = array_type.__dict__["_value"], []
  monkeypatch.setattr(array_type, "_value",
                      property(lambda self: reads.append(1) or value.fget(self)))
  monkeypatch.setattr(jax, "device_get", lambda tree: reads.append(1) or tree)
  assert collapse.after_step(3, state, batch, rng) == 0.0  # not a diagnostics step
  assert collapse.after_step(4, state, batch, rng) >= 0.0
  monkeypatch.undo()
  assert reads == []
  metrics = collapse.read()
  assert collapse.read() == {}  # read once
  assert set(metrics) == {"diagnostics/rankme", "diagnostics/rankme_fraction",
                          "diagnostics/embedding_std", "diagnostics/embedding_std_scaled"}
  # The features of the step's first view, on one device: state.step 1 was made by step 0,
  # whose key is fold_in(rng, 0); view 0 of all the views it made.
  key = jax.random.fold_in(jax.random.key(0), 0)
  on_one = jax.device_put((encoder_weights(state, "online"), batch), jax.devices()[0])
  expected = jax.jit(lambda weights, images: diagnostics.collapse_metrics(
      make_feature_fn(graphdef)(*weights, augment.views_of_batch(key, images, views)[0])))(
          *on_one)
  for name, value in expected.items():
    assert metrics[f"diagnostics/{name}"] == pytest.approx(float(value), rel=1e-4), name
  assert 1.0 < metrics["diagnostics/rankme"] <= 32  # batch 32, feature dim 32


def test_the_trainer_logs_diagnostics_every_n_steps(fake_fmnist, tmp_path, monkeypatch):
  """The loop's wiring, with a step that only counts (the diagnostics' values are checked
  above): steps 3 and 6 are diagnostics steps, each read with the next log line."""

  def counting_step(*args, **kwargs):
    del args, kwargs
    zero = jnp.zeros((), jnp.float32)
    return lambda state, batch, rng: (state.replace(step=state.step + 1), {
        "loss": zero, "learning_rate": zero, "grad_norm": zero, "nonfinite": zero})

  monkeypatch.setattr(train, "make_train_step", counting_step)
  warnings = []
  monkeypatch.setattr(train.logging, "warning",
                      lambda fmt, *args, **_: warnings.append(fmt % args if args else fmt))
  config = tiny_config(*fake_fmnist, total_steps=6, log_every_steps=2, checkpoint_every_steps=6,
                       diagnostics_every_steps=3)
  train.train_and_evaluate(config, str(tmp_path))
  records = {r["step"]: r for r in map(json.loads, open(tmp_path / "metrics.jsonl"))}
  assert sorted(records) == [2, 4, 6]
  assert [s for s, r in records.items() if "diagnostics/rankme" in r] == [4, 6]
  for step in (4, 6):
    assert 1.0 < records[step]["diagnostics/rankme"] <= 32
    assert records[step]["diagnostics/embedding_std_scaled"] > 0
  assert not [w for w in warnings if "collapse" in w]  # a random initialisation is no collapse


def test_rank_below_the_random_initialisation_warns(monkeypatch):
  # I-JEPA's collapsed Fashion-MNIST run: rankme 2.77 of 128 (2.2%, above the 1% floor, so
  # collapse_warning is silent) against its random-init ViT's ~3.9: the relative check warns.
  lines = []
  monkeypatch.setattr(diagnostics.logging, "warning", lambda fmt, *a: lines.append(fmt % a))
  trained = {"rankme": 2.77, "rankme_fraction": 0.0216, "embedding_std_scaled": 0.175}
  assert diagnostics.collapse_warning(trained, "x") is None
  assert diagnostics.warn_if_below_random_init(trained, {"rankme": 3.92})
  (line,) = lines
  assert "rankme 2.77 of the trained encoder is below its random initialisation's 3.92" in line
  assert not diagnostics.warn_if_below_random_init({"rankme": 40.0}, {"rankme": 3.92})
  assert len(lines) == 1
