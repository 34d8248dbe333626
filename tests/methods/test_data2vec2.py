"""data2vec 2.0: the inverse block mask (exact kept count in every row, block-shaped), the
objective (the teacher once per image, the student on num_masks masked clones; its loss
against hand-computed parts), the linear EMA schedule and the step on 1 vs 8 devices, an
exact resume of the EMA teacher through the trainer's checkpointer, and one-line refusals."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from conftest import (batch_images, metrics_of_steps, state_and_step, step_losses, tiny_config,
                      typed)
from jax_ssl import checkpoint, masking, sharding
from jax_ssl import config as config_lib
from jax_ssl.config import typed as typed_lib
from jax_ssl.errors import ConfigError
from jax_ssl.methods import data2vec2
from jax_ssl.methods.spec import StepContext
from jax_ssl.models import vit

NUM_MASKS = 2


def d2v_config(**args):
  """A 2-block, 32-wide ViT (4 px patches: 7x7 tokens), 2 masks per image, a 2-layer
  16-wide decoder; EMA 0.9 -> 0.99 so the teacher moves visibly in a few steps."""
  config = tiny_config("unused", "unused", global_batch_size=16)
  config.method = "data2vec2"
  config.method_args = ml_collections.ConfigDict(dict(
      dict(num_masks=NUM_MASKS, top_k_layers=2, ema_start=0.9, ema_end=0.99), **args))
  config.heads = ml_collections.ConfigDict(dict(decoder_dim=16, decoder_kernel=3,
                                                decoder_layers=2, decoder_groups=4))
  config.model.update(dict(backbone="vit_tiny", depth=2, dim=32, num_heads=2))
  config.augment.update(dict(crop_scale=(0.5, 1.0), jitter_prob=0.0))
  return config


def _adjacent_kept_pairs(mask, side):
  kept = ~np.asarray(mask).reshape(-1, side, side)
  return (np.sum(kept[:, 1:] & kept[:, :-1], axis=(1, 2))
          + np.sum(kept[:, :, 1:] & kept[:, :, :-1], axis=(1, 2)))


def test_inverse_block_mask_keeps_exactly_the_count_in_blocks():
  # ViT-B/16's 14x14 grid at the reference's 0.8 / 0.07 / 3: 5 block centres, 39 kept.
  assert data2vec2.num_block_centers(196, 0.8, 0.07, 3) == 5
  assert data2vec2.kept_count(196, 0.8) == 39 and data2vec2.kept_count(49, 0.8) == 9
  make = jax.jit(functools.partial(data2vec2.inverse_block_mask, rows=128, grid_h=14,
                                   grid_w=14, mask_prob=0.8, mask_length=3,
                                   mask_prob_adjust=0.07))
  mask = np.asarray(make(jax.random.key(0)))
  assert mask.shape == (128, 196) and mask.dtype == bool
  np.testing.assert_array_equal((~mask).sum(axis=1), 39)  # every row, exactly
  assert len({row.tobytes() for row in mask}) == 128  # each row its own mask
  # Block-shaped: kept patches touch each other far more often than 39 random ones do
  # (random: 364 adjacent pairs x (39/196)(38/195) = 14 expected; five 3x3 blocks have up to
  # 60, fewer where they overlap, are cut at the border or were trimmed).
  random = np.asarray(masking.random_mask(jax.random.key(1), 128, 196, 0.8))
  np.testing.assert_array_equal((~random).sum(axis=1), 39)
  blocks, scattered = _adjacent_kept_pairs(mask, 14).mean(), _adjacent_kept_pairs(random, 14).mean()
  assert scattered == pytest.approx(14.1, abs=2)
  assert blocks > 2.5 * scattered, (blocks, scattered)
  # The Fashion-MNIST grid: 7x7, one centre, 9 kept in every row.
  small = np.asarray(data2vec2.inverse_block_mask(jax.random.key(2), 64, 7, 7, mask_prob=0.8,
                                                  mask_length=3, mask_prob_adjust=0.07))
  np.testing.assert_array_equal((~small).sum(axis=1), 9)


def test_teacher_runs_once_per_image_and_the_student_on_num_masks_masks(monkeypatch):
  config = typed(d2v_config())
  args = config.method_args
  model = config_lib.build_model(config, 1, 0)
  # The decoder's projection zeroed: every prediction is 0, so each masked token scores
  # sum_d y_d^2 / sqrt(D) = D / sqrt(D) (LayerNormed targets); the teacher is unaffected.
  proj = model.heads["decoder"].proj
  proj.kernel[...] = jnp.zeros_like(proj.kernel[...])
  proj.bias[...] = jnp.zeros_like(proj.bias[...])
  images = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  calls = []
  encode = vit.VisionTransformer.encode_tokens

  def recording(self, tokens, keep_indices=None, *rest, **options):
    calls.append((tokens.shape, None if keep_indices is None else keep_indices.shape,
                  options.get("ffn_outputs", False)))
    return encode(self, tokens, keep_indices, *rest, **options)

  monkeypatch.setattr(vit.VisionTransformer, "encode_tokens", recording)
  graphdef, state = nnx.split(model)
  rng = jax.random.key(3)

  def run(state):
    model = nnx.merge(graphdef, state)
    context = StepContext(rng=rng, step=jnp.zeros((), jnp.int32), target=model)
    loss, metrics, _ = data2vec2.objective(model, [images], {}, context, args)
    # The objective's mask drawn again from its first rng split (jitted here with the rest:
    # eager, each of its ops would compile on its own).
    mask = data2vec2.inverse_block_mask(jax.random.split(rng)[0], 8, 7, 7, mask_prob=0.8,
                                        mask_length=3, mask_prob_adjust=0.07)
    return loss, metrics, data2vec2.teacher_targets(model, images, args.top_k_layers), mask

  loss, metrics, targets, mask = jax.jit(run)(state)
  # Traced once: the teacher on the 4 whole images with its FFN outputs, the student on
  # 4 x 2 clones keeping 9 of the 49 patches each (then the test's own teacher call).
  assert calls == [((4, 49, 32), None, True), ((8, 49, 32), (8, 9), False),
                   ((4, 49, 32), None, True)]
  assert float(loss) == pytest.approx(
      float(metrics["regression"]) + args.cls_weight * float(metrics["cls"]), rel=1e-6)
  assert float(metrics["data2vec2"]) == float(loss)
  assert float(metrics["regression"]) == pytest.approx(np.sqrt(32), rel=1e-3)
  assert float(metrics["pred_var"]) == pytest.approx(1e-3, rel=1e-3)  # only the epsilon
  assert metrics["pred_var_low"] == 1.0  # collapsed predictions are flagged
  # target_var by hand: the teacher's targets of image b at row b * M + m's masked
  # positions (example-major clones, `mask` drawn as the objective draws it).
  rows = np.repeat(np.asarray(targets, np.float64), NUM_MASKS, axis=0)[np.asarray(mask)]
  assert rows.shape == (8 * 40, 32)
  expected = np.mean(np.sqrt(rows.var(axis=0, ddof=1) + 1e-6))
  assert float(metrics["target_var"]) == pytest.approx(expected, rel=1e-5)
  tiled = np.tile(np.asarray(targets, np.float64), (NUM_MASKS, 1, 1))[np.asarray(mask)]
  assert expected != pytest.approx(np.mean(np.sqrt(tiled.var(axis=0, ddof=1) + 1e-6)), rel=1e-4)
  assert metrics["target_var_low"] == 0.0  # LayerNormed targets: std ~1 per channel


@pytest.fixture(scope="module")
def one_device():
  """(config, initial TrainState, jitted step, sharding) on one device, EMA 0.9 -> 0.99 over
  3 of the 6 steps, the state committed to the sharding the resume test restores into: the
  1-vs-8 test's one-device side and the resume test run one compiled step (each train-step
  compilation costs seconds on CPU)."""
  config = d2v_config(ema_anneal_fraction=0.5)
  _, _, _, state, step = state_and_step(config)
  replicated = sharding.replicated(sharding.make_mesh(1))
  return config, jax.device_put(state, replicated), step, replicated


def test_momentum_schedule_and_step_are_the_same_on_1_and_8_devices(one_device):
  config, state, step, _ = one_device  # 0.9 -> 0.99 over 3 of the 6 steps
  one, eight = metrics_of_steps(step, state, config, 2), step_losses(config, 8, steps=2)
  for k, (a, b) in enumerate(zip(one, eight)):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3), (a, b)
    assert a["target_momentum"] == pytest.approx(0.9 + 0.09 * k / 3)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-5)  # the steps did something
  args = typed(config).method_args
  assert float(data2vec2.target_momentum(args, 3, 6)) == pytest.approx(0.99)
  assert float(data2vec2.target_momentum(args, 5, 6)) == pytest.approx(0.99)  # then held
  # The reference's ViT-B anneal: 100k of 375.3k updates; halfway there at 50k.
  reference = data2vec2.Args(ema_anneal_fraction=100_000 / 375_300)
  assert float(data2vec2.target_momentum(reference, 50_000, 375_300)) == pytest.approx(
      0.9998 + (0.99999 - 0.9998) / 2, abs=1e-7)


def test_the_ema_teacher_resumes_exactly_from_a_checkpoint(one_device, tmp_path):
  # 4 steps straight against 2, an Orbax save and restore, and 2 more: steps 2-3 move the
  # teacher at the annealed momenta 0.96 and 0.99, read from the restored step count.
  config, initial, step, replicated = one_device
  rng = jax.random.key_data(jax.random.key(0))
  straight = initial
  for k in range(4):
    straight, _ = step(straight, batch_images(config, k), rng)
  half = initial
  for k in range(2):
    half, _ = step(half, batch_images(config, k), rng)
  directory = str(tmp_path / "checkpoints")
  manager = ocp.CheckpointManager(directory,
                                  item_handlers={"state": ocp.StandardCheckpointHandler()})
  manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(half)))
  manager.wait_until_finished()
  manager.close()
  abstract = checkpoint.abstract_like(initial, replicated)
  resumed = checkpoint.Checkpointer(directory, keep=2, save_every_steps=2).restore_state(
      2, abstract)
  for k in range(2, 4):
    resumed, _ = step(resumed, batch_images(config, k), rng)
  assert step._cache_size() == 1  # pylint: disable=protected-access
  for field in ("target_params", "params"):
    for got, want in zip(jax.tree.leaves(getattr(resumed, field)),
                         jax.tree.leaves(getattr(straight, field))):
      np.testing.assert_array_equal(got, want, err_msg=field)
  # The teacher moved (a stale or reset teacher would fail the comparison above).
  assert not np.allclose(jax.tree.leaves(straight.target_params)[-1],
                         jax.tree.leaves(initial.target_params)[-1])
  assert set(straight.target_params.keys()) == {"backbone"}  # no EMA copy of the decoder


@pytest.mark.parametrize("values, message", [
    ({"mask_prob": 1.0}, "method_args.mask_prob=1.0; must be in (0, 1) (the fraction of the "
                         "patches masked)"),
    ({"num_masks": 0}, "method_args.num_masks=0; must be >= 1 (masked clones per image)"),
    ({"ema_end": 1.5}, "method_args.ema_end=1.5; must be in [0, 1] (an EMA momentum)"),
    ({"ema_anneal_fraction": 0.0}, "method_args.ema_anneal_fraction=0.0; must be in (0, 1] "
                                   "(the fraction of total_steps over which the momentum moves)"),
])
def test_args_refuse_impossible_values_in_one_line(values, message):
  typed_lib.from_mapping(data2vec2.Args, {}, "method_args.")  # the defaults are valid
  typed_lib.from_mapping(data2vec2.Heads, {}, "heads.")
  with pytest.raises(ConfigError) as info:
    typed_lib.from_mapping(data2vec2.Args, values, "method_args.")
  assert str(info.value) == message


def test_the_backbone_refuses_more_target_layers_than_blocks():
  with pytest.raises(ConfigError) as info:
    config_lib.build_model(typed(d2v_config(top_k_layers=3)), 1, 0)
  assert str(info.value) == ("method_args.top_k_layers=3 but the ViT has 2 blocks; set "
                             "method_args.top_k_layers <= 2")
  config = d2v_config()
  config.heads.decoder_groups = 3
  config.heads.decoder_dim = 18
  with pytest.raises(ConfigError, match=r"^heads.decoder_groups=3 does not divide the ViT's "
                                        r"width 32"):
    config_lib.build_model(typed(config), 1, 0)
