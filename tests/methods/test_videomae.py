"""VideoMAE: tube masks, tubelet targets normalised per channel (against numpy written from the
reference's einops), the 1-D sinusoid table, the objective on a tiny video ViT and the train
step on 1 vs 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import clip_step_states, tiny_clip_config, typed
from jax_ssl import config as config_lib
from jax_ssl import masking
from jax_ssl.errors import ConfigError
from jax_ssl.methods import mae, videomae
from jax_ssl.methods.spec import StepContext
from jax_ssl.models import vit


def test_tube_mask_masks_the_same_positions_in_every_time_slot():
  # 3 time slots of a 4x4 grid at 0.9: VideoMAE masks int(0.9 * 16) = 14 per slot (MAE's
  # count would be 16 - int(1.6) = 15).
  assert masking.tube_masked_count(16, 0.9) == 14 and masking.num_masked(16, 0.9) == 15
  assert masking.tube_masked_count(196, 0.9) == 176
  mask = np.asarray(masking.tube_mask(jax.random.key(0), 64, 3, 16, 0.9))
  assert mask.shape == (64, 48) and mask.dtype == bool
  slots = mask.reshape(64, 3, 16)
  assert (slots == slots[:, :1]).all()  # a tube: one spatial mask repeated over time
  assert (slots.sum(axis=2) == 14).all()
  # Different clips get different masks, and every position is masked sometimes.
  assert len({tuple(row) for row in slots[:, 0]}) > 32
  assert slots[:, 0].any(axis=0).all()
  # A pure function of its key.
  np.testing.assert_array_equal(mask, masking.tube_mask(jax.random.key(0), 64, 3, 16, 0.9))


def _numpy_targets(clips, t, p, norm):
  """The reference (engine_for_pretraining.py), in numpy: rearrange 'b c (t p0) (h p1) (w p2)
  -> b (t h w) (p0 p1 p2) c', standardise over dim -2 (unbiased std + 1e-6), then 'b n p c ->
  b n (p c)'. Our clips are channels-last: b (t p0) (h p1) (w p2) c."""
  b, frames, height, width, c = clips.shape
  x = clips.reshape(b, frames // t, t, height // p, p, width // p, p, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, t * p * p, c)
  if norm:
    x = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, ddof=1, keepdims=True) + 1e-6)
  return x.reshape(b, x.shape[1], -1)


def test_tubelet_targets_match_the_reference_computation():
  rng = np.random.default_rng(0)
  clips = rng.uniform(size=(2, 4, 8, 12, 3)).astype(np.float32)
  # Channel 1 of one tubelet rescaled: only that channel's statistics change.
  clips[0, :2, :4, :4, 1] *= 10.0
  tubelets = videomae.video_patchify(clips, 2, 4)
  assert tubelets.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 3)
  np.testing.assert_allclose(tubelets, _numpy_targets(clips, 2, 4, False), rtol=0, atol=0)
  # Token 1 is slot 0, row 0, column 1: frames 0-1, rows 0-3, columns 4-7.
  np.testing.assert_array_equal(np.asarray(tubelets[1, 1]).reshape(2, 4, 4, 3),
                                clips[1, :2, :4, 4:8])
  normalized = np.asarray(videomae.normalized_tubelets(tubelets, 3))
  np.testing.assert_allclose(normalized, _numpy_targets(clips, 2, 4, True), rtol=1e-4,
                             atol=1e-5)
  # Per channel, not per tubelet: each channel of each tubelet has mean 0 and std ~1, and
  # the rescaled channel normalises to the same values as without the rescaling.
  per_channel = normalized.reshape(2, 12, 32, 3)
  np.testing.assert_allclose(per_channel.mean(axis=2), 0.0, atol=1e-5)
  np.testing.assert_allclose(per_channel.std(axis=2, ddof=1), 1.0, atol=1e-4)
  clips[0, :2, :4, :4, 1] /= 10.0
  unscaled = np.asarray(videomae.normalized_tubelets(videomae.video_patchify(clips, 2, 4), 3))
  np.testing.assert_allclose(normalized[0, 0], unscaled[0, 0], atol=1e-4)


def test_sinusoid_table_is_the_reference_formula():
  # get_sinusoid_encoding_table: angle (n, j) = n / 10000^(2 (j // 2) / d); sin on even
  # columns, cos on odd ones.
  table = mae.sinusoid_position_table(5, 6)
  n, j = np.arange(5)[:, None], np.arange(6)[None, :]
  angle = n / np.power(10000, 2 * (j // 2) / 6)
  np.testing.assert_allclose(table[:, 0::2], np.sin(angle[:, 0::2]), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(table[:, 1::2], np.cos(angle[:, 1::2]), rtol=1e-6, atol=1e-7)
  assert table[3, 0] == pytest.approx(np.sin(3.0)) and table[3, 1] == pytest.approx(np.cos(3.0))


def _tiny_videomae_config(**args):
  # A 1-block video ViT on 4-frame 16 px clips, 2x8x8 tubelets: 2 time slots of 2x2 = 8 tokens.
  return tiny_clip_config(
      "videomae", {"mask_ratio": 0.75, **args},
      {"decoder_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
      **{"model.backbone": "vit_tiny", "model.dim": 32, "model.depth": 1,
         "model.num_heads": 2, "model.patch_size": 8, "model.tubelet_size": 2})


@pytest.mark.parametrize("norm_pix", [False, True])
def test_objective_scores_the_tube_masked_tubelets(norm_pix):
  config = typed(_tiny_videomae_config(norm_pix=norm_pix))
  model = config_lib.build_model(config, 1, 0, num_frames=4)
  assert model.backbone.token_grid == (2, 2, 2)
  prediction = model.heads["decoder"].prediction  # zero it: every prediction is 0
  prediction.kernel[...] = jnp.zeros_like(prediction.kernel[...])
  prediction.bias[...] = jnp.zeros_like(prediction.bias[...])
  # Pixels growing along time and space, so the masked tubelets' mean square differs from
  # the mean over all of them.
  clips = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 4, 16, 16, 1))
                      * np.linspace(0.1, 2.0, 4 * 16 * 16).reshape(1, 4, 16, 16, 1),
                      jnp.float32)
  context = StepContext(rng=jax.random.key(7), step=jnp.zeros((), jnp.int32))
  graphdef, state = nnx.split(model)
  loss, metrics, _ = jax.jit(lambda state, clips: videomae.objective(
      nnx.merge(graphdef, state), [clips], {}, context, config.method_args))(state, clips)
  mask = np.asarray(masking.tube_mask(jax.random.key(7), 4, 2, 4, 0.75))  # as the objective
  assert (mask.sum(axis=1) == 2 * 3).all()
  targets = _numpy_targets(np.asarray(clips), 2, 8, norm_pix)
  per_tubelet = np.mean(targets**2, axis=-1)
  expected = per_tubelet[mask].mean()
  assert float(loss) == pytest.approx(expected, rel=1e-4)
  assert float(metrics["videomae"]) == float(loss)
  if norm_pix:  # a standardised channel of n = 2 * 8 * 8 values: mean square (n - 1) / n
    assert expected == pytest.approx(127 / 128, rel=1e-4)
  else:
    # the visible tubelets would score otherwise
    assert abs(per_tubelet[~mask].mean() - expected) > 0.01


def test_videomae_refuses_an_image_vit():
  backbone = vit.make_vit("vit_tiny", image_size=16, patch_size=8, in_channels=1, depth=1,
                          dim=32, num_heads=2, rngs=nnx.Rngs(0))
  with pytest.raises(ConfigError, match="needs a video ViT backbone"):
    videomae.make_heads(backbone, videomae.Heads(), videomae.Args(), nnx.Rngs(0))


def test_step_is_the_same_on_1_and_8_devices():
  # The tube mask is drawn from the step's rng over the global batch: equal losses on 1 and
  # 8 devices mean neither the mask nor the targets depend on how the batch is split.
  config = _tiny_videomae_config()
  one, _ = clip_step_states(config, 1)
  eight, _ = clip_step_states(config, 8)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert a["videomae"] == a["loss"]
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)  # the steps did something
