"""Mixing objectives: one config trains a shared backbone with several objectives in one
jitted step, each with its own heads, weight, state and metrics."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import methods, train
from jax_ssl.errors import ConfigError
from jax_ssl.methods import mixing
from jax_ssl.methods.spec import StepContext


def mixed_config(*paths, **overrides):
  config = tiny_config(*paths, **overrides)
  config.method = "simclr+rotation"
  config.method_args = ml_collections.ConfigDict({
      "simclr": {"weight": 1.0, "temperature": 0.2}, "rotation": {"weight": 0.5}})
  config.heads = ml_collections.ConfigDict({
      "simclr": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2),
      "rotation": dict(classifier_hidden_dim=8, classifier_num_layers=2)})
  return config


def test_mixed_objective_is_the_weighted_sum_of_its_parts():
  config = typed(mixed_config("unused", "unused"))
  config_lib.validate(config, device_count=1)
  spec = methods.get_method(config.method)
  assert spec.name == "simclr+rotation" and spec.views_for(config.method_args) == 2
  model = config_lib.build_model(config, 1, 0)
  assert set(model.heads) == {"simclr", "rotation"}
  assert set(model.heads["simclr"]) == {"projector"} and set(model.heads["rotation"]) == {"classifier"}
  model.eval()  # BatchNorm from running statistics: calls do not change each other
  views = list(jax.random.uniform(jax.random.key(0), (2, 16, 28, 28, 1)))
  context = StepContext(rng=jax.random.key(1), step=jnp.zeros((), jnp.int32))
  loss, metrics, state = spec.objective(model, views, config_lib.init_method_state(config), context,
                                        config.method_args)
  parts = {}
  for name, args in (("simclr", {"temperature": 0.2}), ("rotation", {})):
    part = mixing._ComponentModel(model.backbone, model.heads[name])
    own = methods.METHODS[name].args_type(**args)  # its own Args, without the weight
    parts[name], _, _ = methods.METHODS[name].objective(part, views, {}, context, own)
  assert float(loss) == pytest.approx(float(parts["simclr"] + 0.5 * parts["rotation"]), rel=1e-6)
  assert float(metrics["simclr/loss"]) == pytest.approx(float(parts["simclr"]), rel=1e-6)
  assert float(metrics["rotation/loss"]) == pytest.approx(float(parts["rotation"]), rel=1e-6)
  assert "rotation/rotation_accuracy" in metrics and state == {"simclr": {}, "rotation": {}}


def test_mixed_run_end_to_end_logs_each_objective(fake_fmnist, tmp_path):
  config = mixed_config(*fake_fmnist, total_steps=8, checkpoint_every_steps=100)
  config.optimizer.base_learning_rate = 4e-3
  initial = config_lib.build_model(typed(config), 1, typed(config).seed)
  out = train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert len(records) == 8
  for r in records:
    assert {"simclr/loss", "simclr/nt_xent", "rotation/loss", "rotation/rotation_accuracy"} <= set(r)
    assert r["loss"] == pytest.approx(r["simclr/loss"] + 0.5 * r["rotation/loss"], rel=1e-5)
  # Both objectives' heads and the shared backbone are trained.
  before = nnx.state(initial, nnx.Param)
  for path, (a, b) in zip(
      (jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(before)),
      zip(jax.tree.leaves(before), jax.tree.leaves(out["state"].params))):
    assert not np.allclose(a, b), path


@pytest.mark.parametrize("mutate, message", [
    (lambda c: setattr(c, "method", "simclr+rotaton"),
     r"method='simclr\+rotaton' is unknown \('rotaton' is not a method\)"),
    (lambda c: c.method_args.rotation.__setattr__("wieght", 1.0),
     r"config key 'method_args.rotation.wieght' is unknown; did you mean 'method_args.rotation.weight'\?"),
    (lambda c: c.method_args.__setattr__("vicreg", {"weight": 1.0}),
     r"config key 'method_args.vicreg' is unknown"),
])
def test_bad_mixed_config_is_one_line(mutate, message):
  config = mixed_config("unused", "unused")
  mutate(config)
  with pytest.raises(ConfigError, match=message) as info:
    config_lib.validate(typed(config), device_count=1)
  assert "\n" not in str(info.value)


def test_misspelt_head_key_is_one_line_and_a_missing_one_takes_the_default():
  config = mixed_config("unused", "unused")
  config.heads.rotation.classifier_hiden_dim = 8
  with pytest.raises(ConfigError, match=r"config key 'heads.rotation.classifier_hiden_dim' is "
                                        r"unknown; did you mean 'heads.rotation.classifier_hidden_dim'\?"):
    typed(config)
  del config.heads.rotation["classifier_hiden_dim"]
  del config.heads.rotation["classifier_hidden_dim"]
  default = methods.METHODS["rotation"].heads_type().classifier_hidden_dim
  assert typed(config).heads.rotation.classifier_hidden_dim == default


def test_mixed_args_hand_each_component_its_own_args_and_name_the_component():
  config = mixed_config("unused", "unused")
  args = typed(config).method_args
  simclr = methods.METHODS["simclr"]
  assert mixing.own_args(simclr, args) == simclr.args_type(temperature=0.2)
  assert args.rotation.weight == 0.5 and args.simclr.weight == 1.0
  config.method_args.simclr.temperature = 0.0
  with pytest.raises(ConfigError, match=r"^method_args.simclr.temperature=0.0; must be > 0"):
    typed(config)
