"""DINO's linear-probe input on a ViT (eval.linear_blocks / eval.linear_avgpool): the pooled
token of each of the last N blocks through the final norm, concatenated, then the last block's
mean patch token; the linear and 1% probes read it, kNN keeps the pooled output (DINO's
eval_linear.py / eval_knn.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import state_and_step, tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import sharding
from jax_ssl.config import data_checks
from jax_ssl.errors import ConfigError, DataError
from jax_ssl.evaluate import protocols
from jax_ssl.evaluate import run as evaluate_run
from jax_ssl.models import vit


def _vit(**overrides):
  kwargs = dict(image_size=28, patch_size=4, in_channels=1, depth=3, dim=16, num_heads=2,
                rngs=nnx.Rngs(0))
  kwargs.update(overrides)
  return vit.make_vit("vit_tiny", **kwargs)


def _by_hand(model, images):
  """Every block's output through the final norm, written out block by block."""
  x = model.embed_patches(images) + model.position_embeddings()[model.num_cls_tokens:]
  prefix = [jnp.broadcast_to(model.cls_token[...], (x.shape[0], 1, x.shape[2]))
            + model.position_embeddings()[None, :1]]
  if model.register_tokens is not None:
    prefix.append(jnp.broadcast_to(model.register_tokens[...],
                                   (x.shape[0], model.num_registers, x.shape[2])))
  x = jnp.concatenate([*prefix, x], axis=1)
  outputs = []
  for block in model.blocks:
    x = vit.apply_blocks([block], x)
    outputs.append(model.norm(x))
  return outputs


@pytest.mark.parametrize("num_registers", [0, 2])
def test_probe_features_are_the_last_blocks_cls_tokens_and_the_mean_patch_token(num_registers):
  model = _vit(pool="cls", num_registers=num_registers)
  images = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
  outputs = _by_hand(model, images)
  prefix = 1 + num_registers
  features = np.asarray(model.probe_features(images, last_blocks=2, avgpool=True))
  assert features.shape == (3, 3 * 16)
  np.testing.assert_allclose(features[:, :16], outputs[1][:, 0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(features[:, 16:32], outputs[2][:, 0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(features[:, 32:], outputs[2][:, prefix:].mean(axis=1), rtol=1e-5,
                             atol=1e-5)
  # The registers are not patches: with them counted the mean would differ.
  if num_registers:
    assert not np.allclose(features[:, 32:], outputs[2][:, 1:].mean(axis=1), atol=1e-4)
  # One block without avgpool is the encoder's output; blocks differ from each other.
  np.testing.assert_allclose(model.probe_features(images), model(images), rtol=1e-5, atol=1e-6)
  assert not np.allclose(features[:, :16], features[:, 16:32], atol=1e-3)


def test_probe_features_pool_each_block_without_a_cls_token():
  model = _vit(pool="gap", cls_token=False)
  images = jax.random.uniform(jax.random.key(2), (2, 28, 28, 1))
  features = np.asarray(model.probe_features(images, last_blocks=3))
  blocks = model.encode_tokens(model.embed_patches(images), block_outputs=True)[1]
  assert features.shape == (2, 48)
  for k in range(3):
    np.testing.assert_allclose(features[:, 16 * k:16 * (k + 1)], blocks[k].mean(axis=1),
                               rtol=1e-5, atol=1e-5)


def _vit_config(**overrides):
  config = tiny_config("unused", "unused")
  config.model.update(dict(backbone="vit_tiny", depth=2, dim=16, num_heads=2, pool="cls"))
  for key, value in overrides.items():
    config.eval[key] = value
  return config


@pytest.mark.parametrize("overrides, model, message", [
    (dict(linear_blocks=0), {}, "eval.linear_blocks=0; must be >= 1"),
    (dict(linear_blocks=3), {}, "eval.linear_blocks=3 but the ViT has 2 blocks; use 1 to 2"),
    (dict(linear_avgpool=True), dict(pool="gap"), "model.pool='gap' already is that mean"),
    (dict(linear_blocks=2), dict(backbone="resnet_small"), "model.backbone='resnet_small' "
     "has none: use 1 / False"),
])
def test_probe_feature_keys_are_checked_at_the_entry_point(overrides, model, message):
  config = _vit_config(**overrides)
  config.model.update(model)
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(typed(config), device_count=1)
  config_lib.validate(typed(_vit_config(linear_blocks=2, linear_avgpool=True)), 1)


def test_videos_refuse_probe_features_before_training():
  class Info:  # a video dataset's DatasetInfo, as far as the check reads it
    features = {"video": None, "label": None}
    metadata = {}
    splits = {}
  with pytest.raises(DataError, match="the clip evaluation probes the encoder's pooled"):
    data_checks.refuse_unevaluable(typed(_vit_config(linear_blocks=2)), Info())


def test_evaluate_probes_linear_on_the_blocks_and_knn_on_the_output(fake_fmnist, tmp_path):
  config = tiny_config(*fake_fmnist, **{
      "eval.protocols": "knn,linear,lowlabel-10%", "eval.baselines": True,
      "eval.report": False, "eval.linear_blocks": 2, "eval.linear_avgpool": True,
      "eval.low_label_seeds": (0,)})
  config.model.update(dict(backbone="vit_tiny", depth=2, dim=16, num_heads=2, pool="cls"))
  config = typed(config)
  _, graphdef, _, state, _ = state_and_step(config)
  mesh = sharding.make_mesh(1)
  state = sharding.replicate(state, mesh)
  results = evaluate_run.evaluate(config, str(tmp_path), graphdef, state, mesh, train_seconds=1)
  assert results["linear_input"] == {"blocks": 2, "avgpool": True}
  data = evaluate_run.EvalData(config)
  size, crop = config.augment.output_size, config.eval.crop_fraction
  weights = (state.params, state.batch_stats)
  extract = lambda encoder: (*data.features(encoder(*weights), "train", mesh),
                             *data.features(encoder(*weights), "test", mesh))
  pooled = extract(evaluate_run.make_encoder(graphdef, mesh, size, crop))
  probed = extract(evaluate_run.make_encoder(graphdef, mesh, size, crop, last_blocks=2,
                                             avgpool=True))
  assert pooled[0].shape[1] == 16 and probed[0].shape[1] == 48
  args = dict(num_classes=data.num_classes, knn_k=config.eval.knn_k,
              knn_k_sweep=tuple(config.eval.knn_k_sweep),
              knn_temperature=config.eval.knn_temperature, low_label_seeds=(0,))
  chosen = protocols.parse_protocols("knn,linear,lowlabel-10%")
  on_probe, _ = protocols.frozen_feature_protocols(*probed, chosen, **args)
  on_pooled, _ = protocols.frozen_feature_protocols(*pooled, chosen, **args)
  assert results["knn_top1"] == on_pooled["knn_top1"]
  for key in ("linear_top1", "linear_holdout_top1", "linear_10pct_top1"):
    assert results[key] == on_probe[key], key
  assert results["linear_holdout_top1"] != on_pooled["linear_holdout_top1"]
  # The random-init baseline (here the same weights: nothing trained) is probed the same way.
  random_init = results["baselines"]["random_init"]
  assert random_init["linear_holdout_top1"] == on_probe["linear_holdout_top1"]
  assert random_init["knn_top1"] == on_pooled["knn_top1"]
  # Probed again on the output (as `evaluate --protocols linear` after editing the run's
  # config): the linear results are the pooled ones and the old input is not claimed.
  config = dataclasses.replace(config, eval=dataclasses.replace(
      config.eval, linear_blocks=1, linear_avgpool=False))
  again = evaluate_run.evaluate(config, str(tmp_path), graphdef, state, mesh, train_seconds=1,
                                protocol_names="linear", previous=results)
  assert "linear_input" not in again
  assert again["linear_holdout_top1"] == on_pooled["linear_holdout_top1"]
