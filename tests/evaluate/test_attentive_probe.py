"""The attentive probe (issue 28, item 6): it reads what mean pooling loses, the patch tokens
of ViTs and ResNets, the encoder `eval.encoder` names, and its wiring through `evaluate`."""

import json

import jax
import numpy as np
import pytest

from conftest import state_and_step, tiny_byol_config, tiny_config, typed
from jax_ssl import config as config_lib, sharding
from jax_ssl.data import augment
from jax_ssl.errors import ConfigError
from jax_ssl.evaluate import attentive_probe, features, linear_probe
from jax_ssl.evaluate import run as evaluate_run
from jax_ssl.state import encoder_weights, split_model
from jax_ssl.step import make_feature_fn

SETTINGS = attentive_probe.AttentiveSettings(steps=150, batch_size=64, learning_rate=3e-3)


def _marker_tokens(count, rng, positions=4, dim=16):
  """Tokens = a fixed embedding per position + noise; a marker vector is added to the token
  at position `label`. Mean pooling gives every class the same mean (the marker and the
  position embeddings are averaged in whatever the label): only attention finds the marker
  and reads the position it sits at."""
  position = np.random.default_rng(123).normal(size=(positions, dim))
  marker = 3 * np.random.default_rng(321).normal(size=dim)
  labels = rng.integers(0, positions, count)
  tokens = position[None] + 0.3 * rng.normal(size=(count, positions, dim))
  tokens[np.arange(count), labels] += marker
  return tokens.astype(np.float16), labels


def test_attentive_probe_reads_what_mean_pooling_cannot():
  rng = np.random.default_rng(0)
  train_tokens, train_labels = _marker_tokens(512, rng)
  test_tokens, test_labels = _marker_tokens(256, rng)
  pooled = linear_probe.linear_probe_accuracy(
      train_tokens.mean(1), train_labels, test_tokens.mean(1), test_labels, num_classes=4,
      l2_grid=(1e-4, 1e-2))["top1"]
  assert pooled < 0.4  # chance is 0.25
  scores = attentive_probe.train_and_score(
      train_tokens, train_labels, test_tokens, test_labels, num_classes=4, num_heads=2,
      settings=SETTINGS, mesh=sharding.make_mesh(1))
  assert scores["top1"] > 0.9, scores


def test_classifier_is_the_reference_block_and_heads_must_divide():
  model = attentive_probe.AttentiveClassifier(16, 3, num_heads=4, rngs=attentive_probe.nnx.Rngs(0))
  tokens = np.random.default_rng(0).normal(size=(2, 5, 16)).astype(np.float32)
  # V-JEPA's CrossAttentionBlock by hand: q + proj(attention(q, LN(x))), then + MLP(LN(q)).
  q = np.asarray(model.query[...])[0, 0]
  norm = np.asarray(model.norm1(tokens))
  query = np.asarray(model.q(q[None]))[0].reshape(4, 4)
  kv = np.asarray(model.kv(norm))
  k, v = kv[..., :16].reshape(2, 5, 4, 4), kv[..., 16:].reshape(2, 5, 4, 4)
  logits = np.einsum("hc,bthc->bht", query, k) / 2.0
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  pooled = q + np.asarray(model.proj(np.einsum("bht,bthc->bhc", weights, v).reshape(2, 16)))
  pooled = pooled + np.asarray(model.fc2(jax.nn.gelu(model.fc1(model.norm2(pooled)),
                                                     approximate=False)))
  np.testing.assert_allclose(np.asarray(model(tokens)), np.asarray(model.classifier(pooled)),
                             rtol=1e-4, atol=1e-5)
  with pytest.raises(ConfigError, match="eval.attentive_num_heads=3 does not divide"):
    attentive_probe.AttentiveClassifier(16, 3, num_heads=3, rngs=attentive_probe.nnx.Rngs(0))


@pytest.mark.parametrize("backbone", ["resnet_small", "vit_tiny"])
def test_patch_tokens_pool_to_the_features(backbone):
  """The tokens are the features before pooling: their mean is what the other protocols
  read (a ViT's "gap" pool; a ResNet's global average pool)."""
  config = tiny_config("unused", "unused")
  if backbone == "vit_tiny":
    config.model.update(dict(backbone="vit_tiny", depth=1, dim=16, num_heads=2, patch_size=7))
  config = typed(config)
  graphdef, params, stats = split_model(config_lib.build_model(config, 1, 0))
  images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
  tokens = np.asarray(jax.jit(features.make_token_fn(graphdef))(params, stats, images))
  pooled = np.asarray(jax.jit(make_feature_fn(graphdef))(params, stats, images))
  assert tokens.shape == ((4, 16, 16) if backbone == "vit_tiny" else (4, 16, pooled.shape[1]))
  np.testing.assert_allclose(tokens.mean(axis=1), pooled, rtol=1e-4, atol=1e-5)
  model = attentive_probe.nnx.merge(graphdef, params, stats)
  assert attentive_probe.default_num_heads(model.backbone) == (
      2 if backbone == "vit_tiny" else 1)


def test_cache_and_backbone_refusals_are_one_line():
  assert attentive_probe.check_cache_size(60000, (49, 128)) == 60000 * 49 * 128 * 2  # 753 MB
  with pytest.raises(ConfigError, match=r"1281167 x \(196, 768\) float16 = 359\.2 GiB, over "
                     r"the 8 GiB limit; set eval.train_limit to at most 28532$"):
    attentive_probe.check_cache_size(1281167, (196, 768))
  config = tiny_config("unused", "unused")
  config.eval.protocols = "knn,attentive"
  config.model.backbone = "vq_encoder"
  with pytest.raises(ConfigError, match="'attentive' needs patch tokens .* not "
                     "model.backbone='vq_encoder'"):
    typed(config)


def test_evaluate_runs_the_attentive_protocol_on_the_chosen_encoder(fake_fmnist, tmp_path,
                                                                     monkeypatch):
  config = tiny_byol_config(*fake_fmnist, **{
      "eval.protocols": "knn,attentive", "eval.encoder": "target", "eval.baselines": False,
      "eval.report": False, "eval.attentive_steps": 60, "eval.attentive_batch_size": 64,
      "eval.attentive_learning_rate": 1e-2})
  config = typed(config)
  _, graphdef, _, state, _ = state_and_step(config)
  # An EMA target apart from the online network (as after training; no step compiled).
  state = state.replace(target_params=jax.tree.map(lambda p: 0.8 * p, state.target_params))
  mesh = sharding.make_mesh(1)
  state = sharding.replicate(state, mesh)
  token_fns = []
  real_evaluate = attentive_probe.evaluate
  monkeypatch.setattr(attentive_probe, "evaluate",
                      lambda data, token_fn, *a, **k: token_fns.append(token_fn) or
                      real_evaluate(data, token_fn, *a, **k))
  results = evaluate_run.evaluate(config, str(tmp_path), graphdef, state, mesh, train_seconds=1)
  saved = json.loads((tmp_path / "results.json").read_text())
  # The fake images' class is a bright band's row: tokens of the random-ish encoder show it.
  assert saved["attentive_top1"] == results["attentive_top1"] > 0.3
  assert saved["attentive_cache_mb"] == pytest.approx(256 * 16 * 32 * 2 / 2**20, abs=0.05)
  assert 1.0 < saved["diagnostics"]["rankme"] <= 32 and saved["diagnostics"]["examples"] == 128
  # The tokens are the EMA target's (eval.encoder="target"), not the online network's.
  images = np.random.default_rng(9).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
  tokens = np.asarray(token_fns[0](jax.device_put(images, sharding.batch_sharding(mesh))))
  view = augment.center_view(images, config.augment.output_size)
  token_fn = jax.jit(features.make_token_fn(graphdef))
  np.testing.assert_allclose(tokens, token_fn(*encoder_weights(state, "target"), view),
                             rtol=1e-4, atol=1e-5)
  assert not np.allclose(tokens, token_fn(*encoder_weights(state, "online"), view), atol=1e-4)


def test_results_table_shows_the_attentive_column_only_when_present(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
  import results_table  # pylint: disable=g-import-not-at-top
  runs = []
  for name, extra in (("plain", {}), ("probed", {"attentive_top1": 0.875})):
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps({
        "method": "mae", "dataset": "fashion_mnist", "steps": 10, "train_seconds": 60.0,
        "knn_top1": 0.7, "linear_top1": 0.8, "linear_1pct_top1": 0.6, **extra}))
    runs.append(str(tmp_path / name))
  assert "attentive_top1" not in results_table.table(runs[:1])
  header, _, plain, probed = results_table.table(runs).splitlines()[:4]
  assert header.endswith("| linear_1pct_top1 | attentive_top1 |")
  assert plain.endswith("| 0.6000 | — |") and probed.endswith("| 0.6000 | 0.8750 |")
