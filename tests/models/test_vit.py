"""The ViT backbone: sizes against timm's parameter counts, shapes, the subset-of-tokens
encoder (MAE) against the full forward, sin-cos embedding values, pooling, the layer-wise
decay contract, bf16 compute, and its wiring into the config (remat: test_mim.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import masking, optim
from jax_ssl.errors import ConfigError
from jax_ssl.models import vit


def _tiny(**overrides):
  kwargs = dict(image_size=28, patch_size=4, in_channels=1, depth=2, dim=32, num_heads=2,
                rngs=nnx.Rngs(0))
  kwargs.update(overrides)
  return vit.make_vit("vit_tiny", **kwargs)


def _images(batch=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, 28, 28, 1))


@pytest.mark.parametrize("name, patch_size, pos_embedding, expected", [
    # timm's vit_{tiny,small,base,large}_patch16_224 (5,717,416 / 22,050,664 / 86,567,656 /
    # 304,326,632) and vit_huge_patch14_224 (632,045,800) less the 1000-class head (D x 1000
    # + 1000) and the (1 + N) x D learned position embedding (ours is fixed sin-cos); both
    # have the CLS token, as ours.
    ("vit_tiny", 16, "sincos", 5_717_416 - 193_000 - 197 * 192),
    ("vit_small", 16, "sincos", 22_050_664 - 385_000 - 197 * 384),
    ("vit_base", 16, "sincos", 86_567_656 - 769_000 - 197 * 768),
    ("vit_base", 16, "learned", 86_567_656 - 769_000),
    ("vit_large", 16, "sincos", 304_326_632 - 1_025_000 - 197 * 1024),
    ("vit_huge", 14, "sincos", 632_045_800 - 1_281_000 - 257 * 1280),
])
def test_parameter_counts_match_timm(name, patch_size, pos_embedding, expected):
  # Shapes only (nnx.eval_shape): ViT-H's 630M parameters are never allocated.
  model = nnx.eval_shape(lambda: vit.make_vit(
      name, image_size=224, patch_size=patch_size, in_channels=3, pos_embedding=pos_embedding,
      rngs=nnx.Rngs(0)))
  assert sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))) == expected
  dim, depth, heads = vit.BACKBONES[name]
  assert model.feature_dim == dim and model.num_layers == depth
  assert model.blocks[0].attention.num_heads == heads
  assert model.blocks[0].mlp.fc1.out_features == 4 * dim  # timm's MLP: 4096 (L), 5120 (H)
  assert model.grid_size == (224 // patch_size,) * 2


def test_shapes_with_and_without_cls_token():
  model = _tiny()
  images = _images()
  tokens = model.embed_patches(images)
  assert tokens.shape == (3, 49, 32)
  assert model(images).shape == (3, 32) and model(images).dtype == jnp.float32
  assert model.encode_tokens(tokens).shape == (3, 50, 32)
  keep = jnp.tile(jnp.arange(12), (3, 1))
  assert model.encode_tokens(tokens, keep).shape == (3, 13, 32)
  no_cls = _tiny(cls_token=False)
  assert no_cls.encode_tokens(no_cls.embed_patches(images), keep).shape == (3, 12, 32)
  with pytest.raises(ValueError, match="this ViT takes sides that are multiples of 4"):
    model(jnp.zeros((1, 30, 30, 1)))
  with pytest.raises(ValueError, match="1 channel"):
    model(jnp.zeros((1, 28, 28, 3)))


def test_subset_of_tokens_equals_full_forward_where_it_should():
  model = _tiny()
  images = _images()
  tokens = model.embed_patches(images)
  full = model.encode_tokens(tokens)
  # All tokens, in order: the full forward.
  everything = jnp.tile(jnp.arange(49), (3, 1))
  np.testing.assert_allclose(model.encode_tokens(tokens, everything), full, atol=1e-6)
  # All tokens, permuted per example: the same tokens permuted (positions travel with
  # the tokens; attention is permutation-equivariant).
  perm = jnp.stack([jax.random.permutation(jax.random.key(i), 49) for i in range(3)])
  permuted = model.encode_tokens(tokens, perm)
  np.testing.assert_allclose(permuted[:, 0], full[:, 0], atol=1e-5)
  np.testing.assert_allclose(permuted[:, 1:], jnp.take_along_axis(full[:, 1:], perm[..., None],
                                                                  axis=1), atol=1e-5)
  # A subset: the encoder sees only those patches, so the dropped patches' pixels cannot
  # change its output, while they do change the full forward.
  mask = masking.random_mask(jax.random.key(1), 3, 49, 0.75)
  keep = masking.mask_indices(mask, 37).keep
  pixel_mask = masking.unpatchify(jnp.repeat(mask[..., None], 16, axis=2), 4, 7, 7)
  other = jnp.where(pixel_mask, 1.0 - images, images)
  subset = model.encode_tokens(tokens, keep)
  np.testing.assert_allclose(model.encode_tokens(model.embed_patches(other), keep), subset,
                             atol=1e-6)
  assert not np.allclose(model.encode_tokens(model.embed_patches(other)), full, atol=1e-3)
  # With no blocks the subset is exactly the kept rows of the full output.
  shallow = _tiny(depth=0)
  shallow_tokens = shallow.embed_patches(images)
  np.testing.assert_allclose(
      shallow.encode_tokens(shallow_tokens, keep)[:, 1:],
      jnp.take_along_axis(shallow.encode_tokens(shallow_tokens)[:, 1:], keep[..., None], 1),
      atol=1e-6)


def test_sincos_embedding_known_values():
  table = vit.sincos_position_embedding(2, 3, 8)
  assert table.shape == (6, 8)
  # w = 10000^(-k/2), k = 0, 1: [1, 0.01]. Token 0 (row 0, column 0): sin 0, cos 0.
  np.testing.assert_allclose(table[0], [0, 0, 1, 1, 0, 0, 1, 1])
  # Token 5 = row 1, column 2: first half encodes the column (2), second half the row (1).
  np.testing.assert_allclose(table[5], [np.sin(2), np.sin(0.02), np.cos(2), np.cos(0.02),
                                        np.sin(1), np.sin(0.01), np.cos(1), np.cos(0.01)],
                             rtol=1e-6)
  # In the model: the CLS position is zero, the patches get the table.
  positions = _tiny().position_embeddings()
  np.testing.assert_array_equal(positions[0], 0)
  np.testing.assert_allclose(positions[1:], vit.sincos_position_embedding(7, 7, 32))


def test_learned_positions_are_parameters_and_pooling():
  model = _tiny(pos_embedding="learned")
  assert model.position_embedding[...].shape == (1, 50, 32)
  images = _images()
  encoded = model.encode_tokens(model.embed_patches(images))
  np.testing.assert_allclose(model(images), jnp.mean(encoded[:, 1:], axis=1), atol=1e-6)
  cls_model = _tiny(pool="cls")
  encoded = cls_model.encode_tokens(cls_model.embed_patches(images))
  np.testing.assert_allclose(cls_model(images), encoded[:, 0], atol=1e-6)
  with pytest.raises(ValueError, match="pool='cls' with cls_token=False"):
    _tiny(pool="cls", cls_token=False)


def test_layer_index_contract():
  model = _tiny(depth=3, pos_embedding="learned")
  assert model.num_layers == 3
  seen = {}
  for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    seen.setdefault(model.layer_index(path), set()).add(path[0] if path[0] != "blocks"
                                                         else f"blocks/{path[1]}")
  assert seen == {0: {"patch_embed", "cls_token", "position_embedding"},
                  1: {"blocks/0"}, 2: {"blocks/1"}, 3: {"blocks/2"}, 4: {"norm"}}
  assert model.layer_index(("blocks", "1", "mlp", "fc1", "kernel")) == 2  # string indices
  assert model.layer_index(("head", "kernel")) == 4  # anything after the backbone


def test_weight_decay_skips_every_bias_and_norm():
  model = _tiny(depth=1)
  mask = optim.decay_mask(nnx.state(model, nnx.Param))
  decays = {"/".join(str(key.key) for key in path[:-1]): flag  # path[-1]: the Variable's value
            for path, flag in jax.tree_util.tree_flatten_with_path(mask)[0]}
  # Attention's q/k/v biases are [heads, head_dim]: excluded by name, not only by ndim.
  assert decays["blocks/0/attention/query/bias"] is False
  assert decays["blocks/0/attention/query/kernel"] is True
  assert decays["blocks/0/attention/out/kernel"] is True
  assert {key for key, flag in decays.items() if flag} == {
      "cls_token", "patch_embed/kernel", "blocks/0/mlp/fc1/kernel", "blocks/0/mlp/fc2/kernel",
      *(f"blocks/0/attention/{name}/kernel" for name in ("query", "key", "value", "out"))}


def test_bfloat16_compute_keeps_float32_parameters():
  full = _tiny()
  half = _tiny(dtype="bfloat16")
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(half, nnx.Param)))
  images = _images()
  tokens = half.encode_tokens(half.embed_patches(images))
  assert tokens.dtype == jnp.bfloat16
  # Same weights (same seed), bf16 matmuls: features within 5% of the float32 ones (layer-
  # normalised, O(1)), but not equal.
  difference = np.abs(np.asarray(half(images)) - np.asarray(full(images)))
  assert 0 < difference.max() < 0.05, difference.max()


def test_mask_token_replaces_only_masked_tokens():
  token = vit.MaskToken(4, rngs=nnx.Rngs(0))
  tokens = jnp.arange(24, dtype=jnp.float32).reshape(1, 6, 4)
  mask = jnp.array([[True, False, False, True, False, False]])
  out = token(tokens, mask)
  np.testing.assert_array_equal(out[0, 0], token.token[...][0, 0])
  np.testing.assert_array_equal(out[0, 3], token.token[...][0, 0])
  np.testing.assert_array_equal(out[0, [1, 2, 4, 5]], tokens[0, [1, 2, 4, 5]])


def test_config_builds_a_vit_for_any_method_and_checks_its_keys():
  config = tiny_config("unused", "unused")
  config.model.update(dict(backbone="vit_small", depth=1, dim=16, num_heads=2))
  config = typed(config)
  config_lib.validate(config, device_count=1)
  model = config_lib.build_model(config, 1, 0)  # SimCLR on a ViT: projector on its features
  assert isinstance(model.backbone, vit.VisionTransformer) and model.backbone.feature_dim == 16
  model.eval()
  assert model.features(_images(2)).shape == (2, 16)
  for key, value, message in [
      ("patch_size", 5, "model.patch_size=5 does not divide augment.output_size=28"),
      ("num_heads", 3, "model width 16 is not divisible by 3 heads"),
      ("pool", "max", "model.pool='max'"),
      ("dtype", "float16", "model.dtype='float16'")]:
    bad = tiny_config("unused", "unused")
    bad.model.update(dict(backbone="vit_small", depth=1, dim=16, num_heads=2))
    bad.model[key] = value
    with pytest.raises(ConfigError, match=message):
      config_lib.validate(typed(bad), device_count=1)
  resnet_mae = tiny_config("unused", "unused")
  resnet_mae.method = "mae"
  resnet_mae.method_args, resnet_mae.heads = {}, {}  # MAE's defaults
  with pytest.raises(ConfigError, match="method='mae' works on patch tokens and needs a ViT"):
    config_lib.validate(typed(resnet_mae), device_count=1)


def _sincos_at(rows, cols, dim):
  """The sin-cos embedding written out for arbitrary (fractional) positions."""
  omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))
  axis = lambda x: np.concatenate([np.sin(x[:, None] * omega), np.cos(x[:, None] * omega)], 1)
  r, c = np.meshgrid(rows, cols, indexing="ij")
  return np.concatenate([axis(c.ravel()), axis(r.ravel())], axis=1)


def test_position_embeddings_are_interpolated_for_other_view_sizes():
  model = _tiny()  # 7x7 grid
  own = np.asarray(model.position_embeddings())
  np.testing.assert_array_equal(np.asarray(model.position_embeddings((7, 7))), own)
  # A 3x3 local crop (12 px) spans the same extent: token i at (i + 0.5) * 7/3 - 0.5.
  local = np.asarray(model.position_embeddings((3, 3)))
  assert local.shape == (1 + 9, 32)
  np.testing.assert_array_equal(local[0], own[0])  # the CLS position is kept
  positions = (np.arange(3) + 0.5) * 7 / 3 - 0.5   # 0.667, 3.0, 5.333
  np.testing.assert_allclose(local[1:], _sincos_at(positions, positions, 32), atol=1e-6)
  np.testing.assert_allclose(local[1 + 4], own[1 + 3 * 7 + 3], atol=1e-6)  # centre = centre

  # Learned table: bicubic resize; a table linear in (row, column) is reproduced exactly at
  # interior tokens of a 14x14 upsampling (cubic kernels reproduce linear functions).
  learned = _tiny(pos_embedding="learned")
  rows, cols = np.meshgrid(np.arange(7.0), np.arange(7.0), indexing="ij")
  ramp = np.stack([rows, cols] + [rows + 2 * cols] * 30, -1).reshape(49, 32)
  learned.position_embedding[...] = jnp.asarray(
      np.concatenate([np.full((1, 32), 5.0), ramp])[None], jnp.float32)
  table = np.asarray(learned.position_embeddings((14, 14)))
  assert table.shape == (1 + 196, 32) and np.all(table[0] == 5.0)
  up = (np.arange(14) + 0.5) / 2 - 0.5
  r, c = np.meshgrid(up, up, indexing="ij")
  expected = np.stack([r, c] + [r + 2 * c] * 30, -1)
  np.testing.assert_allclose(table[1:].reshape(14, 14, 32)[3:-3, 3:-3],
                             expected[3:-3, 3:-3], atol=1e-4)
  np.testing.assert_array_equal(np.asarray(learned.position_embeddings()),
                                np.asarray(learned.position_embedding[...][0]))
  # Gradients reach the learned table through the interpolation.
  graphdef, params = nnx.split(learned, nnx.Param)
  grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(
      jnp.ones((2, 12, 12, 1))) ** 2))(params)
  assert float(jnp.abs(grads["position_embedding"][...]).max()) > 0

  # A 12 px view runs at 3x3 tokens; its positions are the interpolated ones.
  small = jax.random.uniform(jax.random.key(3), (2, 12, 12, 1))
  assert model(small).shape == (2, 32)
  tokens = model.embed_patches(small)
  np.testing.assert_allclose(model.encode_tokens(tokens), model.encode_tokens(tokens, grid=(3, 3)),
                             atol=1e-6)
  with pytest.raises(ValueError, match="not a square grid"):
    model.encode_tokens(jnp.zeros((1, 6, 32)))


def test_padding_keys_are_invisible_and_ffn_outputs_add_up():
  # key_valid: a padded token changes no valid token's output, whatever its content: the
  # first 10 of 12 kept tokens, padded with 2 arbitrary ones, give what the 10 alone give.
  model = _tiny()
  tokens = model.embed_patches(_images())
  keep = jnp.tile(jnp.arange(12), (3, 1))
  valid = jnp.arange(12)[None, :] < 10
  padded = model.encode_tokens(tokens, keep, key_valid=jnp.broadcast_to(valid, (3, 12)))
  alone = model.encode_tokens(tokens, keep[:, :10])
  np.testing.assert_allclose(padded[:, :11], alone, atol=1e-5)
  other = model.encode_tokens(tokens, keep.at[:, 10:].set(40),
                              key_valid=jnp.broadcast_to(valid, (3, 12)))
  np.testing.assert_allclose(other[:, :11], padded[:, :11], atol=1e-6)
  # Without the mask the two extra tokens are attended to.
  assert not np.allclose(model.encode_tokens(tokens, keep)[:, :11], alone, atol=1e-3)
  # ffn_outputs: the same output, and one MLP output per block; with one block, the output
  # before the final norm is (tokens + attention) + ffn, so norm(pre + ffn) is the output.
  out, ffn = model.encode_tokens(tokens, ffn_outputs=True)
  np.testing.assert_allclose(out, model.encode_tokens(tokens), atol=1e-6)
  assert len(ffn) == model.num_layers and ffn[0].shape == out.shape
  one = _tiny(depth=1)
  x = one.embed_patches(_images())
  out, (ffn,) = one.encode_tokens(x, ffn_outputs=True)
  block = one.blocks[0]
  start = jnp.concatenate([jnp.broadcast_to(one.cls_token[...], (3, 1, 32)),
                           x + one.position_embeddings()[1:]], axis=1)
  after_attention = start + block.attention(block.norm1(start))
  np.testing.assert_allclose(ffn, block.mlp(block.norm2(after_attention)), atol=1e-5)
  np.testing.assert_allclose(out, one.norm(after_attention + ffn), atol=1e-5)


def test_causal_attention_mask():
  mask = vit.attention_mask(jnp.array([[True, True, False]]), causal_length=3)
  np.testing.assert_array_equal(mask[0, 0], [[1, 0, 0], [1, 1, 0], [1, 1, 0]])
  assert vit.attention_mask() is None
