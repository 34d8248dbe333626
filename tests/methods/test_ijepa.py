"""I-JEPA: the latent loss against hand-computed values, the objective's targets (the EMA
encoder's LayerNorm'd tokens at the target blocks), padding that changes nothing, the
default context size derived from the reference's sampler, the train step on 1 vs 8
devices, the linear EMA schedule, and an exact resume from a checkpoint."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from conftest import (batch_images, metrics_of_steps, state_and_step, step_losses, tiny_config,
                      typed)
from jax_ssl import checkpoint, losses, multiblock, optim
from jax_ssl import config as config_lib
from jax_ssl.config import typed as typed_lib
from jax_ssl.errors import ConfigError
from jax_ssl.methods import ijepa
from jax_ssl.methods.spec import StepContext, select_modules


def _config(**overrides):
  """A 1-block ViT of width 16 on 7x7 tokens with a 1-block predictor, batch 16."""
  config = tiny_config("unused", "unused", global_batch_size=16, **overrides)
  config.method = "ijepa"
  config.method_args = ml_collections.ConfigDict({"ema_start": 0.9})
  config.heads = ml_collections.ConfigDict(
      {"predictor_dim": 16, "predictor_depth": 1, "predictor_num_heads": 2})
  config.model.update(dict(backbone="vit_tiny", depth=1, dim=16, num_heads=2, cls_token=False))
  config.augment.update(dict(crop_scale=(0.5, 1.0), jitter_prob=0.0))
  return config


def _model():
  return config_lib.build_model(typed(_config()), 1, 0)


def _jitted(model, fn, *args):
  """fn(model, *args) under jax.jit (eager ViT ops compile one by one: slow on CPU)."""
  graphdef, state = nnx.split(model)
  return jax.jit(lambda state, *args: fn(nnx.merge(graphdef, state), *args))(state, *args)


def test_losses_hand_computed():
  # Two tokens of D = 2; the second is padding with a huge error that must not count.
  pred = np.array([[[0.5, 3.0], [100.0, -100.0]]])
  target = np.zeros((1, 2, 2))
  valid = np.array([[True, False]])
  # smooth-L1 (beta 1): 0.5 * 0.5^2 = 0.125 and 3 - 0.5 = 2.5 -> mean 1.3125.
  assert float(losses.ijepa(pred, target, valid)) == pytest.approx(1.3125)
  # L2: (0.25 + 9) / 2 = 4.625.
  assert float(losses.ijepa(pred, target, valid, loss="l2")) == pytest.approx(4.625)
  # Mean over the valid tokens of the whole batch (2 + 1 of them), not per row then averaged.
  pred = np.array([[[1.0], [2.0]], [[4.0], [0.0]]])
  valid = np.array([[True, True], [True, False]])
  assert float(losses.ijepa(pred, np.zeros_like(pred), valid, loss="l2")) == pytest.approx(
      (1 + 4 + 16) / 3)
  assert float(losses.ijepa(pred, np.zeros_like(pred), np.zeros((2, 2)))) == 0.0
  # smooth_l1 at beta 2: |x| = 1 is quadratic (0.25), |x| = 3 linear (2).
  np.testing.assert_allclose(losses.smooth_l1(np.array([1.0, -3.0]), beta=2.0), [0.25, 2.0])
  # The targets' LayerNorm has no parameters: [1, 2, 3] -> [-1, 0, 1] / sqrt(2/3 + 1e-5).
  np.testing.assert_allclose(losses.feature_layer_norm(np.array([[1.0, 2.0, 3.0]])),
                             [[-1.0, 0.0, 1.0]] / np.sqrt(2 / 3 + 1e-5), rtol=1e-6)
  with pytest.raises(ValueError, match="loss='l1'"):
    losses.ijepa(pred, pred, valid, loss="l1")


def test_args_refuse_impossible_values_in_one_line():
  for values, message in [
      ({"loss": "l1"}, "method_args.loss='l1'; use one of ('smooth_l1', 'l2')"),
      ({"target_scale": (0.3, 0.2)}, "method_args.target_scale=(0.3, 0.2); need 0 < low <= "
                                     "high <= 1"),
      ({"context_fraction": 0.0}, "method_args.context_fraction=0.0; must be in (0, 1]"),
      ({"ema_end": 1.5}, "method_args.ema_end=1.5; must be in [0, 1] (an EMA momentum)")]:
    with pytest.raises(ConfigError) as error:
      typed_lib.from_mapping(ijepa.Args, values, "method_args.")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
  with pytest.raises(ConfigError, match="heads.predictor_dim=30 is not divisible by "
                                        "heads.predictor_num_heads=4"):
    typed_lib.from_mapping(ijepa.Heads, {"predictor_dim": 30, "predictor_num_heads": 4},
                           "heads.")


def _reference_context_minimum(rng, grid, batch=128, batches=100):
  """The context count of facebookresearch/ijepa's MaskCollator (src/masks/multiblock.py,
  configs/in1k_vith14_ep300.yaml) in numpy: per batch one target and one context size
  (`reference_block_size`), per image 4 target blocks and the context block at
  `torch.randint(0, H - h)` (its off-by-one kept), the context redrawn up to 20 times until
  it keeps more than min_keep = 10 tokens outside the targets; the reference then cuts every
  image's context to the batch's minimum, which is returned per batch. (Its rare last resort,
  relaxing the targets after 20 failures, is left out.)"""
  grid_h, grid_w = grid
  rows, cols = np.arange(grid_h)[:, None], np.arange(grid_w)[None]

  def blocks(shape, height, width):
    top = rng.integers(0, grid_h - height, shape)[..., None, None]
    left = rng.integers(0, grid_w - width, shape)[..., None, None]
    return (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)

  minima = []
  for _ in range(batches):
    target = multiblock.reference_block_size(rng.random(), grid, (0.15, 0.2), (0.75, 1.5))
    context = multiblock.reference_block_size(rng.random(), grid, (0.85, 1.0), (1.0, 1.0))
    covered = blocks((batch, 4), *target).any(axis=1)
    counts = (blocks((batch, 20), *context) & ~covered[:, None]).sum(axis=(2, 3))
    first = np.argmax(counts > 10, axis=1)
    minima.append(counts[np.arange(batch), first].min())
  return np.array(minima)


def test_default_context_size_is_the_reference_batch_minimum():
  # The reference encodes each batch's smallest context: on average 0.268 N on ViT-H/14's
  # 16x16 grid and 0.258 N on ViT-B/16's 14x14 (3 x 300 batches; a batch's minimum varies
  # by ~10 tokens, so the mean of 100 batches is within ~0.005 N); context_fraction = 0.27.
  rng = np.random.default_rng(0)
  fraction = ijepa.Args().context_fraction
  for grid in ((16, 16), (14, 14)):
    mean = np.mean(_reference_context_minimum(rng, grid)) / (grid[0] * grid[1])
    assert abs(mean - fraction) < 0.025, (grid, mean)
  assert ijepa.num_context(ijepa.Args(), 256) == 69 and ijepa.num_context(ijepa.Args(), 196) == 52


def _zero_projection(model):
  layer = model.heads["predictor"].projection
  layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
  layer.bias[...] = jnp.zeros_like(layer.bias[...])


def test_objective_regresses_the_layer_normed_target_tokens_of_the_target_blocks():
  model = _model()
  _zero_projection(model)  # predictions 0: the loss is that of the targets themselves
  images = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
  rng = jax.random.key(3)
  args = ijepa.Args(ema_start=0.9)

  def run(model, images):
    context = StepContext(rng=rng, step=0, target=model)  # the target: the model itself
    smooth, metrics, _ = ijepa.objective(model, [images], {}, context, args)
    l2, _, _ = ijepa.objective(model, [images], {}, context, ijepa.Args(loss="l2"))
    # The objective's masks drawn again from its rng, in the same compilation.
    return (smooth, metrics, l2, model.backbone.encode_tokens(model.backbone.embed_patches(images)),
            ijepa.make_masks(rng, 8, (7, 7), args))

  smooth, metrics, l2, tokens, masks = _jitted(model, run, images)
  masks = jax.tree.map(np.asarray, masks)
  tokens = np.asarray(tokens, np.float64)
  normed = (tokens - tokens.mean(-1, keepdims=True)) / np.sqrt(tokens.var(-1, keepdims=True)
                                                               + 1e-5)
  target = normed[np.arange(8)[:, None, None], masks.targets]  # [B, T, Kt, D]
  error = np.abs(target)
  per_token = np.where(error < 1, 0.5 * error**2, error - 0.5).mean(-1)
  valid = masks.targets_valid
  assert float(smooth) == pytest.approx(per_token[valid].mean(), rel=1e-5)
  # Only the valid slots count (the padding repeats a block's last token: another mean).
  assert valid.sum() < valid.size
  # L2 against 0: each LayerNorm'd token has mean square var / (var + eps), just below 1.
  assert float(l2) == pytest.approx(np.mean((target**2).mean(-1)[valid]), rel=1e-5)
  assert 0.99 < float(l2) < 1.0
  assert float(metrics["target_tokens"]) == valid[0, 0].sum()
  assert float(metrics["context_tokens"]) == masks.context_valid.sum(1).mean()


def test_padding_changes_no_prediction():
  model = _model()
  images = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  masks = ijepa.make_masks(jax.random.key(1), 4, (7, 7), ijepa.Args())
  assert not np.all(masks.context_valid) and not np.all(masks.targets_valid)
  # Other tokens at the padded context and target slots, and 5 more padded context slots.
  context = jnp.concatenate([jnp.where(masks.context_valid, masks.context, 48 - masks.context),
                             jnp.arange(5)[None].repeat(4, 0)], axis=1).astype(jnp.int32)
  context_valid = jnp.concatenate([masks.context_valid, jnp.zeros((4, 5), bool)], axis=1)
  targets = jnp.where(masks.targets_valid, masks.targets, 0)
  repadded = masks._replace(context=context, context_valid=context_valid, targets=targets)
  # Without the key mask the padding would be seen.
  unmasked = masks._replace(context_valid=jnp.ones_like(masks.context_valid),
                            targets_valid=jnp.ones_like(masks.targets_valid))

  def run(model, images):
    return [ijepa.predict(model, images, m) for m in (masks, repadded, unmasked)]

  pred, pred_repadded, pred_unmasked = map(np.asarray, _jitted(model, run, images))
  valid = np.asarray(masks.targets_valid)
  np.testing.assert_allclose(pred_repadded[valid], pred[valid], atol=1e-5)
  assert np.max(np.abs(pred_unmasked[valid] - pred[valid])) > 1e-3


@pytest.fixture(scope="module")
def one_device():
  """(config, spec, initial TrainState, jitted step, sharding) on one device: EMA 0.9 -> 1
  over 4 steps (0.9, 0.925, 0.95, 0.975), weight decay on a cosine, the state committed to
  the sharding a restored one will have. The 1-vs-8 test's one-device side and the momentum
  and resume test run one compiled step (each train-step compilation costs seconds on CPU)."""
  config = _config(total_steps=4)
  config.optimizer.weight_decay_end = 0.4
  spec, _, _, state, step = state_and_step(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return config, spec, jax.device_put(state, device), step, device


def test_step_is_the_same_on_1_and_8_devices(one_device):
  config, _, state, step, _ = one_device
  one, eight = metrics_of_steps(step, state, config, 2), step_losses(config, 8, steps=2)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3), (a, b)
    assert a["ijepa"] == a["loss"]
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)  # the steps did something


def test_target_follows_the_linear_momentum_and_a_restored_run_continues_exactly(one_device,
                                                                                   tmp_path):
  # EMA 0.9 -> 1 over 4 steps (0.9, 0.925, 0.95, 0.975), weight decay on a cosine.
  config, spec, state, step, device = one_device
  assert spec.target_modules == ("backbone",) and spec.evaluation_encoder == "target"
  rng = jax.random.key_data(jax.random.key(0))
  states, losses_seen = [state], []
  for k in range(4):
    old_target = state.target_params
    state, metrics = step(state, batch_images(config, k), rng)
    momentum = 0.9 + 0.1 * k / 4
    assert float(metrics["target_momentum"]) == pytest.approx(momentum)
    assert float(optim.linear_momentum(0.9, 1.0, k, 4)) == pytest.approx(momentum)
    online = select_modules(state.params, spec.target_modules)
    for new, old, now in zip(jax.tree.leaves(state.target_params), jax.tree.leaves(old_target),
                             jax.tree.leaves(online)):
      np.testing.assert_allclose(new, momentum * np.asarray(old) + (1 - momentum) * np.asarray(now),
                                 rtol=1e-5, atol=1e-7)
    states.append(state)
    losses_seen.append(float(metrics["loss"]))
  assert not np.allclose(jax.tree.leaves(state.target_params)[-1],
                         jax.tree.leaves(select_modules(state.params, ("backbone",)))[-1])

  # Save the state after step 2 as the trainer does (Orbax, the whole TrainState), restore it
  # through the trainer's Checkpointer into a fresh process's shapes, and run steps 3-4.
  directory = str(tmp_path / "checkpoints")
  manager = ocp.CheckpointManager(directory,
                                  item_handlers={"state": ocp.StandardCheckpointHandler()})
  manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(states[2])))
  manager.wait_until_finished()
  manager.close()
  restored = checkpoint.Checkpointer(directory, keep=2, save_every_steps=1).restore_state(
      2, checkpoint.abstract_like(states[2], device))
  assert int(restored.step) == 2
  for k in (2, 3):
    restored, metrics = step(restored, batch_images(config, k), rng)
    assert float(metrics["loss"]) == losses_seen[k]
  assert step._cache_size() == 1  # pylint: disable=protected-access
  for field in ("params", "target_params", "opt_state"):
    for got, want in zip(jax.tree.leaves(getattr(restored, field)),
                         jax.tree.leaves(getattr(state, field))):
      np.testing.assert_array_equal(got, want, err_msg=field)
