"""The video ViT: tubelet order on a crafted clip, the embedding as VideoMAE's Conv3d,
VideoMAE's 1-D sin-cos table, the kept-token encoder, pooling, the parameter count against
VideoMAE's ViT-B, and the refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from jax_ssl.models import video_vit


def _tiny(**overrides):
  kwargs = dict(num_frames=4, tubelet_size=2, image_size=8, patch_size=4, in_channels=2,
                depth=1, dim=16, num_heads=2, rngs=nnx.Rngs(0))
  kwargs.update(overrides)
  return video_vit.make_video_vit("vit_tiny", **kwargs)


def _clips(batch=2, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, 4, 8, 8, 2))


def test_parameter_count_against_videomae_vit_base():
  # VideoMAE's ViT-B encoder (MCG-NJU/VideoMAE modeling_pretrain.py
  # pretrain_videomae_base_patch16_224's encoder; modeling_finetune.py's vit_base_patch16_224
  # without its head has the same count, fc_norm in place of norm), by its layer shapes:
  # PatchEmbed Conv3d(3, 768, (2, 16, 16)) with bias, no CLS token, a fixed sin-cos table
  # (a buffer), 12 blocks of [norm1, qkv weight (no bias), q_bias, v_bias, proj, norm2, fc1,
  # fc2], the final norm.
  dim, hidden = 768, 3072
  patch_embed = 3 * 2 * 16 * 16 * dim + dim
  block = (2 * dim + dim * 3 * dim + 2 * dim + dim * dim + dim + 2 * dim
           + dim * hidden + hidden + hidden * dim + dim)
  videomae = patch_embed + 12 * block + 2 * dim
  assert videomae == 86_227_200
  model = nnx.eval_shape(lambda: video_vit.make_video_vit(
      "vit_base", num_frames=16, image_size=224, patch_size=16, in_channels=3,
      cls_token=False, rngs=nnx.Rngs(0)))
  count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  # Ours has timm's k bias too, which VideoMAE holds at zero: 768 a block.
  assert count == videomae + 12 * dim
  assert model.token_grid == (8, 14, 14) and model.num_patches == 1568
  assert model.patch_pixels == 2 * 16 * 16 * 3 and model.grid_size == (14, 14)


def test_tubelets_cover_frames_rows_and_columns_in_token_order():
  # Each value names its own (frame, row, column, channel).
  t, y, x, c = np.meshgrid(np.arange(4), np.arange(8), np.arange(8), np.arange(2),
                           indexing="ij")
  clip = (1000 * t + 100 * y + 10 * x + c).astype(np.float32)[None]
  model = _tiny()
  tubelets = np.asarray(model.tubelets(jnp.asarray(clip)))
  assert tubelets.shape == (1, 2 * 2 * 2, 2 * 4 * 4 * 2)
  for k in range(8):
    # token k = (tubelet in time, row, column), time-major: frames 2 tt and 2 tt + 1.
    tt, row, col = k // 4, (k // 2) % 2, k % 2
    expected = clip[0, 2 * tt:2 * tt + 2, 4 * row:4 * row + 4, 4 * col:4 * col + 4, :]
    np.testing.assert_array_equal(tubelets[0, k], expected.reshape(-1))
  np.testing.assert_array_equal(
      video_vit.untubeletify(jnp.asarray(tubelets), 2, 4, model.token_grid), clip)


def test_embedding_is_videomaes_conv3d_in_token_order():
  model = _tiny()
  clips = _clips()
  kernel = model.patch_embed.kernel[...].reshape(2, 4, 4, 2, 16)  # (frame, row, col, C) x D
  conv = lax.conv_general_dilated(clips, kernel, (2, 4, 4), "VALID",
                                  dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  # Conv3d(kernel = stride = (2, 4, 4)) then flatten(T', h, w): VideoMAE's PatchEmbed.
  expected = conv.reshape(2, 8, 16) + model.patch_embed.bias[...]
  np.testing.assert_allclose(model.embed_patches(clips), expected, rtol=1e-5, atol=1e-5)


def test_sinusoid_table_is_videomaes():
  table = video_vit.sinusoid_table(10, 8)
  # get_sinusoid_encoding_table: n / 10000^(2 (j // 2) / D), sin on even j, cos on odd j.
  assert table[3, 4] == pytest.approx(np.sin(3 / 10000 ** (4 / 8)))
  assert table[3, 5] == pytest.approx(np.cos(3 / 10000 ** (4 / 8)))
  assert table[7, 0] == pytest.approx(np.sin(7.0)) and table[7, 1] == pytest.approx(np.cos(7.0))
  model = _tiny()
  positions = model.position_embeddings()
  assert positions.shape == (1 + 8, 16)
  np.testing.assert_array_equal(positions[0], 0.0)  # the CLS token's fixed position
  np.testing.assert_allclose(positions[1:], video_vit.sinusoid_table(8, 16))
  # One tubelet in time (the same frames' size): the table's first rows.
  np.testing.assert_allclose(model.position_embeddings((1, 2, 2))[1:], positions[1:5])


def test_kept_tokens_pooling_and_call():
  model = _tiny()
  clips = _clips()
  tokens = model.embed_patches(clips)
  full = model.encode_tokens(tokens)
  assert full.shape == (2, 1 + 8, 16)
  perm = jnp.stack([jax.random.permutation(jax.random.key(i), 8) for i in range(2)])
  permuted = model.encode_tokens(tokens, perm)
  np.testing.assert_allclose(permuted[:, 1:], jnp.take_along_axis(full[:, 1:], perm[..., None],
                                                                  axis=1), atol=1e-5)
  # With no blocks, a kept token is LayerNorm(embedding + its row of the 1-D table over the
  # N flattened tokens): its position is its index in (time, row, column) order.
  shallow = _tiny(depth=0)
  keep = jnp.array([[5, 0, 3], [7, 6, 1]])
  shallow_tokens = shallow.embed_patches(clips)
  kept = jnp.take_along_axis(shallow_tokens + video_vit.sinusoid_table(8, 16), keep[..., None],
                             axis=1)
  np.testing.assert_allclose(shallow.encode_tokens(shallow_tokens, keep)[:, 1:],
                             shallow.norm(kept), rtol=1e-5, atol=1e-5)
  features = model(clips)
  assert features.shape == (2, 16) and features.dtype == jnp.float32
  np.testing.assert_allclose(features, model.pool(full), rtol=1e-5, atol=1e-6)
  assert model.pool(model.encode_tokens(tokens, keep)).shape == (2, 16)


def test_learned_positions_cover_every_token():
  model = _tiny(pos_embedding="learned", cls_token=False)
  assert model.position_embedding[...].shape == (1, 8, 16)
  assert model(_clips()).shape == (2, 16)


def test_refusals_are_one_line():
  with pytest.raises(ValueError, match="model.rope=True: the video ViT has no 3-D rotary"):
    _tiny(rope=True)
  with pytest.raises(ValueError, match="clips of 5 frames do not split into tubelets of 2"):
    _tiny(num_frames=5)
  model = _tiny()
  with pytest.raises(ValueError, match="this video ViT takes"):
    model.tubelets(jnp.zeros((1, 3, 8, 8, 2)))
  with pytest.raises(ValueError, match="position embeddings cover 2x2"):
    model(jnp.zeros((1, 4, 12, 12, 2)))
