"""CNN-JEPA: the loss against hand-computed values, the reference's random masks, the
mixed strategy, the sparse step on 1 vs 8 devices (sparse BatchNorm statistics over the
global batch's visible cells) and an exact resume of the EMA target through an Orbax
checkpoint."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import (batch_images, metrics_of_steps, set_keys, state_and_step, step_losses,
                      tiny_config, typed)
from jax_ssl import checkpoint, losses, multiblock, sharding
from jax_ssl import config as config_lib
from jax_ssl.errors import ConfigError
from jax_ssl.methods import cnn_jepa


def test_cnn_jepa_loss_hand_computed():
  # Position 0: p = [3, 4] -> [0.6, 0.8], t = [1, 0]: d = [-0.4, 0.8], smooth L1
  # 0.5 * (0.16 + 0.64) = 0.4, L2 0.8. Position 1: p = [0, 2] -> [0, 1], t = [0, -5] ->
  # [0, -1]: d = [0, 2], smooth L1 |2| - 0.5 = 1.5, L2 4.
  pred = np.array([[[[3.0, 4.0], [0.0, 2.0]]]], np.float32)  # [1, 1, 2, 2]
  target = np.array([[[[1.0, 0.0], [0.0, -5.0]]]], np.float32)
  both, first = np.array([[[1, 1]]]), np.array([[[1, 0]]])
  assert float(losses.cnn_jepa(pred, target, both)) == pytest.approx((0.4 + 1.5) / 2, rel=1e-6)
  assert float(losses.cnn_jepa(pred, target, first)) == pytest.approx(0.4, rel=1e-6)
  assert float(losses.cnn_jepa(pred, target, both, "l2")) == pytest.approx(2.4, rel=1e-6)
  assert float(losses.cnn_jepa(pred, target, np.zeros((1, 1, 2)))) == 0.0
  # Only the target positions get a gradient.
  grad = jax.grad(lambda p: losses.cnn_jepa(p, target, first))(jnp.asarray(pred))
  assert np.abs(grad[0, 0, 0]).max() > 0 and np.all(grad[0, 0, 1] == 0)


def test_random_masks_keep_the_reference_count():
  # 4x4 grid at ratio 0.6: round(16 * 0.4) = 6 context cells (MAE's int() would keep 6 too;
  # 7x7: round(19.6) = 20, where int() keeps 19), the targets the other cells.
  for grid, keep in (((4, 4), 6), ((7, 7), 20)):
    context, targets = cnn_jepa.random_masks(jax.random.key(0), 8, grid, 0.6)
    assert context.shape == (8, *grid)
    np.testing.assert_array_equal(np.sum(np.asarray(context), axis=(1, 2)), keep)
    np.testing.assert_array_equal(targets, ~np.asarray(context))
    assert len({np.asarray(c).tobytes() for c in context}) == 8  # per example


@pytest.mark.parametrize("grid", [(4, 4), (7, 7)])
def test_multiblock_context_is_the_grid_minus_the_target_blocks(grid):
  args = cnn_jepa.Args(mask_strategy="multiblock")
  context, targets = map(np.asarray, cnn_jepa.sample_masks(jax.random.key(1), 64, grid, args))
  kept = context.sum(axis=(1, 2))
  # The reference's scale-1.0 context block is the whole grid: its context is every cell
  # outside the targets whenever that keeps more than min_keep (5) cells ...
  enough = (~targets).sum(axis=(1, 2)) > 5
  assert enough.any()
  np.testing.assert_array_equal(context[enough], ~targets[enough])
  # ... else the constraints of the last targets are dropped: still more than 5 cells (or
  # the whole grid), a superset of the cells outside the targets.
  assert np.all(kept > 5) and np.all(context | targets)
  # The union of 4 blocks of one size per batch (I-JEPA's sizes: up to max_block_area).
  covered = targets.sum(axis=(1, 2))
  largest = multiblock.max_block_area(grid, args.target_scale, args.target_aspect)
  assert covered.min() >= 1 and covered.max() <= 4 * largest
  relaxed = cnn_jepa.multiblock_masks(jax.random.key(1), 64, grid, cnn_jepa.Args(min_keep=15))
  assert np.all(np.asarray(relaxed[0]).sum(axis=(1, 2)) > min(15, grid[0] * grid[1] - 1))


def test_mixed_strategy_takes_one_strategy_per_batch(monkeypatch):
  # Stand-in multi-block masks: context all but row 0, targets row 0.
  def blocks(rng, batch, grid, args):
    del rng, args
    targets = jnp.zeros((batch, *grid), bool).at[:, 0].set(True)
    return ~targets, targets

  monkeypatch.setattr(cnn_jepa, "multiblock_masks", blocks)
  args = cnn_jepa.Args(multiblock_prob=0.75)
  kinds = []
  for seed in range(40):
    context, targets = cnn_jepa.sample_masks(jax.random.key(seed), 4, (4, 4), args)
    block = np.asarray(targets)[:, 0].all() and not np.asarray(targets)[:, 1:].any()
    if not block:  # random masking of the whole batch: 6 context cells each
      np.testing.assert_array_equal(np.sum(np.asarray(context), axis=(1, 2)), 6)
    kinds.append(block)
  assert 0.5 < np.mean(kinds) < 0.95  # ~0.75 of the batches
  assert cnn_jepa.sample_masks(jax.random.key(0), 4, (4, 4), cnn_jepa.Args(
      mask_strategy="random"))[0].sum() == 4 * 6


def _tiny_config(**overrides):
  config = tiny_config("unused", "unused")
  config.method = "cnn_jepa"
  # random masking: the sparse path with a different context count per device
  config.method_args = ml_collections.ConfigDict(dict(base_momentum=0.9,
                                                      mask_strategy="random"))
  config.heads = ml_collections.ConfigDict(dict(predictor_layers=1))
  return set_keys(config, overrides)


@pytest.fixture(scope="module")
def one_device():
  """(config, spec, initial TrainState, jitted step, sharding) of 4 steps on one device with
  the method's default masks ("mixed": context counts differ between images and devices),
  the state committed to the sharding the resume test restores into. The 1-vs-8 test's
  one-device side and the resume test run one compiled step (each train-step compilation
  costs seconds on CPU)."""
  config = _tiny_config(total_steps=4, **{"method_args.mask_strategy": "mixed"})
  spec, _, _, state, step = state_and_step(config)
  replicated = sharding.replicated(sharding.make_mesh(1))
  return config, spec, jax.device_put(state, replicated), step, replicated


def test_step_is_the_same_on_1_and_8_devices(one_device):
  # Every BatchNorm of the sparse encoder normalises with the visible cells of the global
  # batch: per-device statistics would change the first step's loss already.
  config, _, state, step, _ = one_device
  one, eight = metrics_of_steps(step, state, config, 2), step_losses(config, 8, steps=2)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert a["cnn_jepa"] == a["loss"] and 0 < a["context_fraction"] < 1
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)


def test_ema_target_resumes_exactly_from_a_checkpoint(one_device, tmp_path):
  # 4 steps straight against 2 steps, an Orbax save and restore of the whole train state
  # (as the trainer's Checkpointer), and 2 more: the EMA target, its BatchNorm statistics
  # and everything else are bit-equal.
  config, spec, state, step, replicated = one_device
  assert spec.target_modules == ("backbone",) and spec.evaluation_encoder == "target"
  rng = jax.random.key_data(jax.random.key(0))
  straight = state
  for k in range(4):
    straight, _ = step(straight, batch_images(config, k), rng)
  resumed = state
  for k in range(2):
    resumed, _ = step(resumed, batch_images(config, k), rng)
  directory = str(tmp_path / "checkpoints")
  manager = ocp.CheckpointManager(directory, item_handlers={"state": ocp.StandardCheckpointHandler()})
  manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(resumed)))
  manager.wait_until_finished()
  manager.close()
  abstract = checkpoint.abstract_like(resumed, replicated)
  resumed = checkpoint.Checkpointer(directory, keep=2, save_every_steps=2).restore_state(
      2, abstract)
  for k in range(2, 4):
    resumed, _ = step(resumed, batch_images(config, k), rng)
  assert step._cache_size() == 1  # pylint: disable=protected-access
  for field in ("params", "target_params", "target_batch_stats", "batch_stats", "opt_state"):
    a, b = jax.tree.leaves(getattr(resumed, field)), jax.tree.leaves(getattr(straight, field))
    assert len(a) == len(b) > 0, field
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y, err_msg=field)
  # The target moved, and is not the online backbone.
  online = straight.params["backbone"]
  assert any(not np.array_equal(x, y) for x, y in zip(
      jax.tree.leaves(straight.target_params["backbone"]), jax.tree.leaves(online)))
  assert any(not np.array_equal(x, y) for x, y in zip(
      jax.tree.leaves(straight.target_params["backbone"]),
      jax.tree.leaves(state.target_params["backbone"])))


def test_refuses_a_vit_and_bad_values_in_one_line():
  config = _tiny_config()
  config.model.backbone = "vit_tiny"
  with pytest.raises(ConfigError, match=r"^method='cnn_jepa' needs model.backbone in \["):
    config_lib.validate(typed(config), 1)
  with pytest.raises(ConfigError) as error:
    typed(_tiny_config(**{"method_args.target_scale": (0.3, 0.2)}))
  assert str(error.value) == ("method_args.target_scale=(0.3, 0.2); need low <= high, both in "
                              "(0.0, 1.0] (a fraction of the grid)")
  with pytest.raises(ConfigError, match=r"^method_args.mask_strategy='grid'; use one of"):
    typed(_tiny_config(**{"method_args.mask_strategy": "grid"}))
