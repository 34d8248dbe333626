"""iBOT (and DINOv2's options) in the shared step: the per-view block masks, the two centers
moved separately (and left alone by Sinkhorn centering), the Args' refusals, the train step
on 1 vs 8 devices, and an exact resume of the centers and the EMA teacher through Orbax."""

import grain
import jax
import ml_collections
import numpy as np
import pytest

from conftest import (batch_images, metrics_of_steps, state_and_step, step_losses, tiny_config,
                      typed)
from jax_ssl import checkpoint
from jax_ssl import config as config_lib
from jax_ssl.errors import ConfigError
from jax_ssl.methods import ibot
from jax_ssl.methods.spec import StepContext


def ibot_config(num_local=1, **method_args):
  config = tiny_config("unused", "unused")
  config.method = "ibot"
  config.method_args = ml_collections.ConfigDict(dict(
      base_momentum=0.9, min_block_patches=4, mask_probability=0.9, **method_args))
  config.heads = ml_collections.ConfigDict(dict(
      projector_hidden_dim=16, bottleneck_dim=8, num_prototypes=12, patch_bottleneck_dim=8,
      patch_num_prototypes=10))
  config.model.update(dict(backbone="vit_tiny", patch_size=4, depth=1, dim=16, num_heads=2,
                           pool="cls"))
  config.augment.local_crops.update(num=num_local, output_size=12)
  return config


def test_masks_per_view_exact_counts_in_blocks():
  args = ibot.Args(min_block_patches=4)  # p 0.5, ratios 0.1-0.5 of 49 patches: 4 to 24
  mask, positions, valid = jax.jit(lambda rng: ibot.draw_masks(rng, 128, 2, (7, 7), args))(
      jax.random.key(3))
  mask, positions, valid = map(np.asarray, (mask, positions, valid))
  counts = mask.sum(-1)
  assert positions.shape == valid.shape == (128, 2, 24)
  np.testing.assert_array_equal(valid.sum(-1), counts)
  masked_views = counts > 0
  assert 0.38 < masked_views.mean() < 0.62  # mask_probability 0.5, per view
  assert counts[masked_views].min() >= 4 and counts.max() <= 24
  assert counts[masked_views].std() > 3  # a ratio per view, not one count for all
  # The valid slots are exactly the masked tokens, ascending.
  for b, v in zip(*np.nonzero(masked_views)):
    chosen = positions[b, v][valid[b, v]]
    np.testing.assert_array_equal(chosen, np.flatnonzero(mask[b, v]))
  # Blocks, not scattered tokens: masked tokens have ~2+ masked 4-neighbours (a random
  # mask of 30% gives ~1.2).
  grid = mask.reshape(-1, 7, 7)
  padded = np.pad(grid, ((0, 0), (1, 1), (1, 1)))
  neighbours = (padded[:, :-2, 1:-1].astype(int) + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2]
                + padded[:, 1:-1, 2:])
  assert neighbours[grid].mean() > 2.0


def test_centers_move_separately_and_sinkhorn_leaves_them():
  heads = ibot.Heads(num_prototypes=3, patch_num_prototypes=2)
  untied = ibot.Args(shared_head=False, center_momentum=0.9, patch_center_momentum=0.5)
  state = ibot.init_method_state(untied, heads)
  assert state["center"].shape == (3,) and state["patch_center"].shape == (2,)
  assert ibot.init_method_state(ibot.Args(), heads)["patch_center"].shape == (3,)  # shared
  inputs = {"teacher_cls": np.array([[[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]]),  # [B=1, 2, K]
            "teacher_patch_sum": np.array([[[4.0, 8.0], [2.0, 0.0]]]),  # [B=1, 2, K_patch]
            "teacher_patch_count": np.array([[2.0, 1.0]])}
  context = StepContext(rng=jax.random.key(0), step=np.int32(0))
  new = ibot.update_method_state(state, inputs, context, untied)
  np.testing.assert_allclose(new["center"], 0.1 * np.array([2.0, 2.0, 2.0]), rtol=1e-6)
  np.testing.assert_allclose(new["patch_center"], 0.5 * np.array([2.0, 8.0 / 3]), rtol=1e-6)
  sinkhorn = ibot.update_method_state(
      state, inputs, context, ibot.Args(shared_head=False, centering="sinkhorn"))
  assert sinkhorn is state


@pytest.mark.parametrize("values, message", [
    ({"centering": "mean"}, r"method_args.centering='mean'; use one of \('running', 'sinkhorn'\)"),
    ({"mask_ratio_range": (0.5, 0.1)}, r"method_args.mask_ratio_range=\(0.5, 0.1\); need 0 <= "
                                       r"low <= high < 1"),
    ({"koleo_weight": -0.1}, "method_args.koleo_weight=-0.1; must be >= 0"),
    ({"teacher_patch_temp": 0}, "method_args.teacher_patch_temp=0.0; must be > 0"),
])
def test_bad_args_are_one_line(values, message):
  config = ibot_config()
  config.method_args.update(values)
  with pytest.raises(ConfigError, match=f"^{message}"):
    typed(config)


def test_a_vit_without_cls_token_is_refused():
  config = ibot_config()
  config.model.update(cls_token=False, pool="gap")
  with pytest.raises(ConfigError, match="method='ibot' distils the CLS token: set "
                                        "model.cls_token=True"):
    config_lib.build_model(typed(config), 1, 0, method=config_lib.build_method(typed(config)))


# The 1-vs-8 test's one-device side and the resume test run one compiled step (each train-step
# compilation costs seconds on CPU): running centers (step 2 reads the centers of step 1),
# untied heads (DINOv2's; as many patch as CLS prototypes, so the two centers compare),
# KoLeo (nearest neighbours over the global batch: what makes it independent of the device
# count; DINOv2's per-GPU search would not be) and one local crop.
def _shared_config():
  config = ibot_config(num_local=1, shared_head=False, koleo_weight=0.1)
  config.heads.patch_num_prototypes = config.heads.num_prototypes
  return config


@pytest.fixture(scope="module")
def one_device():
  """(config, spec, initial TrainState, jitted step, sharding) on one device, the state
  committed to the sharding the resume test restores into: one compilation serves both."""
  config = _shared_config()
  spec, _, _, state, step = state_and_step(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return config, spec, jax.device_put(state, device), step, device


def test_step_is_the_same_on_1_and_8_devices(one_device):
  config, _, state, step, _ = one_device
  one, eight = metrics_of_steps(step, state, config, 2), step_losses(config, 8, steps=2)
  for a, b in zip(one, eight):
    for key in ("loss", "ibot_cls", "ibot_patch", "koleo"):
      assert a[key] == pytest.approx(b[key], rel=1e-4), (key, a, b)
    assert a["masked_fraction"] == b["masked_fraction"]
  assert 0.05 < one[0]["masked_fraction"] < 0.5 and one[0]["ibot_patch"] > 0
  assert one[0]["loss"] == pytest.approx(
      one[0]["ibot_cls"] + one[0]["ibot_patch"] + 0.1 * one[0]["koleo"], rel=1e-5)
  assert one[0]["loss"] != pytest.approx(one[1]["loss"], rel=1e-4)


def test_resume_through_orbax_continues_exactly(one_device, tmp_path):
  # The centers and the EMA teacher are train state: saved by jax_ssl.checkpoint after
  # step 2 and restored, step 3 gives the same state bit for bit as without the round trip.
  config, spec, state, step, device = one_device
  rng = jax.random.key_data(jax.random.key(0))
  for k in range(2):
    state, _ = step(state, batch_images(config, k), rng)
  center, patch_center = map(np.asarray, (state.method_state["center"],
                                          state.method_state["patch_center"]))
  assert np.abs(center).sum() > 0 and np.abs(patch_center).sum() > 0
  assert not np.allclose(center, patch_center)  # two centers, moved by different outputs
  checkpointer = checkpoint.Checkpointer(str(tmp_path / "checkpoints"), keep=2,
                                         save_every_steps=1)
  data = iter(grain.MapDataset.range(4).to_iter_dataset())
  assert checkpointer.save(2, state, data, force=True)
  checkpointer.wait()
  restored = checkpointer.restore_state(2, checkpoint.abstract_like(state, device))
  checkpointer.close()
  continued, _ = step(state, batch_images(config, 2), rng)
  resumed, _ = step(restored, batch_images(config, 2), rng)
  assert step._cache_size() == 1  # pylint: disable=protected-access
  for field in ("params", "target_params", "method_state"):
    a, b = jax.tree.leaves(getattr(continued, field)), jax.tree.leaves(getattr(resumed, field))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=field)
  assert set(spec.target_modules) == {"backbone", "heads/projector"}
  assert not np.allclose(np.asarray(continued.method_state["center"]), center)
