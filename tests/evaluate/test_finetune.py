"""Tests for jax_ssl.evaluate.finetune: layer-wise lr decay, and end-to-end fine-tuning on
synthetic images with a known answer (separable -> ~100%, shuffled labels -> chance)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import sharding
from jax_ssl.evaluate import finetune
from jax_ssl.state import split_model


def _settings(**overrides) -> finetune.FinetuneSettings:
  values = dict(steps=10, batch_size=32, base_learning_rate=2e-2, weight_decay=0.0,
                warmup_steps=0, label_smoothing=0.1, layer_decay=1.0, optimizer="adamw",
                crop_scale=(1.0, 1.0), output_size=28)
  return finetune.FinetuneSettings(**{**values, **overrides})


class _Layered(nnx.Module):
  """A backbone with the layer-decay contract: embed (0), blocks 0 and 1 (1, 2), norm (3)."""

  num_layers = 2
  feature_dim = 3

  def __init__(self, rngs: nnx.Rngs):
    self.embed = nnx.Linear(3, 3, rngs=rngs)
    self.blocks = nnx.List([nnx.Linear(3, 3, rngs=rngs) for _ in range(self.num_layers)])
    self.norm = nnx.LayerNorm(3, rngs=rngs)

  def layer_index(self, path: tuple[str, ...]) -> int:
    assert all(isinstance(key, str) for key in path)  # the contract: keys as strings
    if path[0] == "embed":
      return 0
    if path[0] == "blocks":
      return int(path[1]) + 1
    return self.num_layers + 1

  def __call__(self, x):
    x = self.embed(x)
    for block in self.blocks:
      x = block(x)
    return self.norm(x)


class _Plain(_Layered):
  layer_index = None  # no contract: no layer-wise decay


def _first_updates(backbone, settings):
  """{path: update} of the first SGD step with every gradient 1 (update = -lr * scale)."""
  classifier = finetune.Classifier(backbone, 4, rngs=nnx.Rngs(0))
  _, params, _ = split_model(classifier)
  optimizer, schedule, applied = finetune.make_optimizer(params, backbone, settings)
  grads = jax.tree.map(np.ones_like, params)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  flat = {tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)): np.asarray(u)
          for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]}
  return flat, float(schedule(0)), applied


def test_layer_decay_scales_each_layer_learning_rate():
  settings = _settings(optimizer="sgd", layer_decay=0.5)
  updates, learning_rate, applied = _first_updates(_Layered(nnx.Rngs(0)), settings)
  assert applied and learning_rate == pytest.approx(2e-2 * 32 / 256)
  # scale = 0.5 ** (num_layers + 1 - layer_index): embed 1/8, block 0 1/4, block 1 1/2,
  # final norm and the new classifier 1.
  expected = {"embed": 0.125, "blocks/0": 0.25, "blocks/1": 0.5, "norm": 1.0, "head": 1.0}
  seen = set()
  for path, update in updates.items():
    name = path[0] if path[0] == "head" else "/".join(path[1:3] if path[1] == "blocks" else path[1:2])
    seen.add(name)
    np.testing.assert_allclose(update, -learning_rate * expected[name], rtol=1e-6)
  assert seen == set(expected)
  # A backbone without layer_index, or layer_decay 1: every parameter at the full rate.
  for backbone, decay in ((_Plain(nnx.Rngs(0)), 0.5), (_Layered(nnx.Rngs(0)), 1.0)):
    updates, learning_rate, applied = _first_updates(backbone, _settings(optimizer="sgd",
                                                                         layer_decay=decay))
    assert not applied
    for update in updates.values():
      np.testing.assert_allclose(update, -learning_rate, rtol=1e-6)


def _bar_images(count: int, seed: int):
  """Class c: a bright horizontal bar at rows 2c + 4 .. 2c + 8 on noise (conftest's images)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, size=count)
  images = rng.integers(0, 60, size=(count, 28, 28, 1))
  for i, label in enumerate(labels):
    images[i, 2 * label + 4: 2 * label + 8, 4:24] += 180
  return images.astype(np.uint8), labels


def _source(images, labels):
  return [{"image": image, "label": int(label)} for image, label in zip(images, labels)]


def test_finetune_learns_separable_classes_and_not_shuffled_labels():
  config = typed(tiny_config("unused", "unused"))
  graphdef, params, batch_stats = split_model(config_lib.build_model(config, 1, 0))
  mesh = sharding.make_mesh()
  params, batch_stats = sharding.replicate((params, batch_stats), mesh)
  before = jax.tree.map(np.asarray, params)
  tuner = finetune.Finetuner(graphdef, params, batch_stats, num_classes=10,
                             settings=_settings(steps=60, warmup_steps=5, base_learning_rate=0.1),
                             mesh=mesh)
  assert not tuner.layer_decay_applied  # a ResNet: no layer_index
  train_images, train_labels = _bar_images(512, seed=0)
  test_images, test_labels = _bar_images(128, seed=1)
  separable = tuner.run(_source(train_images, train_labels), _source(test_images, test_labels),
                        seed=0, eval_batch_size=64)
  assert separable["top1"] >= 0.95
  assert separable["losses"][-1] < 0.6 * separable["losses"][0]
  # Labels independent of the images (train and test): nothing to learn that transfers.
  rng = np.random.default_rng(2)
  shuffled = tuner.run(_source(train_images, rng.permutation(train_labels)),
                       _source(test_images, rng.permutation(test_labels)), seed=0,
                       eval_batch_size=64)
  assert shuffled["top1"] < 0.3
  # The pretrained weights were copied, not donated or changed.
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, np.asarray(b))


def test_layer_decay_with_the_vit_backbone():
  from jax_ssl.models import vit  # pylint: disable=g-import-not-at-top
  backbone = vit.make_vit("vit_tiny", image_size=28, patch_size=7, in_channels=1, depth=3,
                          dim=16, num_heads=2, rngs=nnx.Rngs(0))
  updates, learning_rate, applied = _first_updates(backbone, _settings(optimizer="sgd",
                                                                       layer_decay=0.5))
  assert applied
  # 0.5 ** (num_layers + 1 - layer_index): patch embedding 1/16, block i 0.5 ** (3 - i).
  for path, update in updates.items():
    if path[0] == "head":
      expected = 1.0
    else:
      expected = 0.5 ** (backbone.num_layers + 1 - backbone.layer_index(path[1:]))
    np.testing.assert_allclose(update, -learning_rate * expected, rtol=1e-6, err_msg=str(path))
  scales = {round(float(-u.flat[0] / learning_rate), 6) for u in updates.values()}
  assert scales == {0.0625, 0.125, 0.25, 0.5, 1.0}


def test_finetune_from_other_weights_equals_a_finetuner_built_on_them():
  """`weights=` (the random-init baseline) fine-tunes exactly those weights with the same
  compiled step: equal to a Finetuner built on them, different from the pretrained start."""
  config = typed(tiny_config("unused", "unused"))
  mesh = sharding.make_mesh()
  graphdef, pretrained, pretrained_stats = split_model(config_lib.build_model(config, 1, 0))
  _, other, other_stats = split_model(config_lib.build_model(config, 1, 7))
  settings = _settings(steps=8, warmup_steps=2, base_learning_rate=0.05)
  train_images, train_labels = _bar_images(256, seed=0)
  test_images, test_labels = _bar_images(128, seed=1)
  args = (_source(train_images, train_labels), _source(test_images, test_labels))

  tuner = finetune.Finetuner(graphdef, pretrained, pretrained_stats, num_classes=10,
                             settings=settings, mesh=mesh)
  from_other = tuner.run(*args, seed=0, eval_batch_size=64, weights=(other, other_stats))
  reference = finetune.Finetuner(graphdef, other, other_stats, num_classes=10,
                                 settings=settings, mesh=mesh).run(*args, seed=0,
                                                                   eval_batch_size=64)
  np.testing.assert_allclose(from_other["losses"], reference["losses"], rtol=1e-5)
  assert from_other["top1"] == pytest.approx(reference["top1"], abs=1 / 128)
  from_pretrained = tuner.run(*args, seed=0, eval_batch_size=64)
  assert not np.allclose(from_pretrained["losses"], from_other["losses"], rtol=1e-3)
