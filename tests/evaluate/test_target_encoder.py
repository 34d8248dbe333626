"""The EMA target as an evaluable encoder (issue 24, item 12): the target keeps its own
BatchNorm running statistics, moved by its own forward passes as DINO's teacher, and
`eval.encoder` picks the encoder evaluated ("method": DINO's teacher, others' online)."""

import jax
import ml_collections
import numpy as np
import pytest

from conftest import state_and_step, tiny_byol_config, tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl.config import saved as saved_lib
from jax_ssl.errors import ConfigError
from jax_ssl.evaluate import run as evaluate_run
from jax_ssl.methods.spec import select_modules
from jax_ssl.state import encoder_weights
from jax_ssl.step import make_feature_fn


def _byol_config(**overrides):
  return tiny_byol_config(total_steps=10, **overrides)


def _setup(config):
  spec, graphdef, _, state, step = state_and_step(config)
  return spec, graphdef, state, step


def _images(config, seed):
  return {"image": np.random.default_rng(seed).integers(
      0, 256, (config.global_batch_size, 28, 28, 1), dtype=np.uint8)}


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("grad_accum_steps", [1, 2])
def test_target_batch_statistics_move_by_the_targets_own_passes(grad_accum_steps):
  config = _byol_config(grad_accum_steps=grad_accum_steps)
  spec, _, state, step = _setup(config)
  initial = _leaves(state.target_batch_stats)
  # The backbone's and the projector's statistics (BYOL's target modules), not the predictor's.
  assert set(state.target_batch_stats.keys()) == {"backbone", "heads"}
  assert set(state.target_batch_stats["heads"].keys()) == {"projector"}
  rng = jax.random.key_data(jax.random.key(0))
  state, _ = step(state, _images(config, 0), rng)
  # Step 0: the target's parameters equal the online ones and BYOL passes both views through
  # both, in the same way, so the target's running averages moved exactly as the online's.
  online = _leaves(select_modules(state.batch_stats, spec.target_modules))
  after_one = _leaves(state.target_batch_stats)
  assert len(online) == len(after_one) == len(initial) > 0
  for target, own, init in zip(after_one, online, initial):
    np.testing.assert_allclose(target, own, rtol=1e-5, atol=1e-6)
  assert sum(not np.allclose(a, b) for a, b in zip(after_one, initial)) == len(initial)
  # Later the target's parameters lag the online ones, so do its statistics.
  for k in range(1, 5):
    state, _ = step(state, _images(config, k), rng)
  online = _leaves(select_modules(state.batch_stats, spec.target_modules))
  differences = [float(np.max(np.abs(a - b)))
                 for a, b in zip(_leaves(state.target_batch_stats), online)]
  assert max(differences) > 1e-3, differences


def test_encoder_weights_swap_in_the_target_and_its_statistics():
  config = _byol_config()
  _, graphdef, state, step = _setup(config)
  for k in range(2):
    state, _ = step(state, _images(config, k), jax.random.key_data(jax.random.key(0)))
  params, batch_stats = encoder_weights(state, "target")
  for a, b in zip(_leaves(params["backbone"]), _leaves(state.target_params["backbone"])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(_leaves(batch_stats["backbone"]), _leaves(state.target_batch_stats["backbone"])):
    np.testing.assert_array_equal(a, b)
  # The predictor (no target copy) keeps the online parameters.
  for a, b in zip(_leaves(params["heads"]["predictor"]),
                  _leaves(state.params["heads"]["predictor"])):
    np.testing.assert_array_equal(a, b)
  features = jax.jit(make_feature_fn(graphdef))
  images = np.random.default_rng(5).uniform(0, 1, (16, 28, 28, 1)).astype(np.float32)
  target_features = np.asarray(features(params, batch_stats, images))
  online_features = np.asarray(features(*encoder_weights(state, "online"), images))
  assert not np.allclose(target_features, online_features, atol=1e-4)
  with pytest.raises(ValueError, match="encoder='teacher'"):
    encoder_weights(state, "teacher")


def test_eval_encoder_method_default_and_validation():
  dino = tiny_config("unused", "unused")
  dino.method = "dino"
  # simclr's argument and head keys are not DINO's: its defaults
  dino.method_args, dino.heads = ml_collections.ConfigDict(), ml_collections.ConfigDict()
  assert config_lib.evaluation_encoder(typed(dino)) == "target"  # DINO's eval_knn.py: the teacher
  simclr = tiny_config("unused", "unused")
  assert config_lib.evaluation_encoder(typed(simclr)) == "online"
  simclr.eval.encoder = "target"
  with pytest.raises(ConfigError, match="simclr has no EMA target of its backbone"):
    config_lib.validate(typed(simclr), 1)
  simclr.eval.encoder = "student"
  with pytest.raises(ConfigError, match="eval.encoder='student'; use 'method'"):
    config_lib.validate(typed(simclr), 1)
  byol = _byol_config()
  byol.eval.encoder = "target"
  assert config_lib.evaluation_encoder(typed(byol)) == "target"
  # Saved configs of older runs were evaluated online.
  saved = typed(byol).to_dict()
  del saved["eval"]["encoder"]
  assert config_lib.from_saved(saved).eval.encoder == "online"
  assert saved_lib.with_saved_defaults(saved)["eval"]["encoder"] == "online"


def test_exported_features_are_the_chosen_encoders(fake_fmnist, tmp_path):
  config = _byol_config()
  config.dataset.source_dir, config.dataset.data_dir = fake_fmnist
  config.eval.test_limit = 32
  _, graphdef, state, step = _setup(config)
  for k in range(2):
    state, _ = step(state, _images(config, k), jax.random.key_data(jax.random.key(0)))
  from jax_ssl import sharding  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh()
  state = sharding.replicate(state, mesh)
  exported = {}
  for encoder in ("online", "target"):
    config.eval.encoder = encoder
    out = tmp_path / encoder
    evaluate_run.export_features(typed(config), graphdef, state, mesh, str(out),
                                 splits=("test",))
    exported[encoder] = np.load(out / "test_features.npy")
  assert not np.allclose(exported["online"], exported["target"], atol=1e-4)
  # The target's features are the feature function on the target's weights.
  test = evaluate_run.EvalData(typed(config)).sources["test"]
  from jax_ssl.data import augment  # pylint: disable=g-import-not-at-top
  images = np.stack([test[i]["image"] for i in range(8)])
  expected = jax.jit(make_feature_fn(graphdef))(
      *encoder_weights(state, "target"),
      augment.center_view(images, config.augment.output_size))
  np.testing.assert_allclose(exported["target"][:8], np.asarray(expected), rtol=1e-4, atol=1e-5)
