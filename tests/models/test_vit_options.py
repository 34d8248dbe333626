"""The ViT options (models/vit_layers.py, model.* in the config): off, the plain ViT's
parameters and outputs; causal, RoPE, QK-norm, SwiGLU, LayerScale and registers each doing
what it says; their config keys reach the model and bad values are one line."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl.errors import ConfigError
from jax_ssl.models import vit


def _tiny(**overrides):
  kwargs = dict(image_size=28, patch_size=4, in_channels=1, depth=1, dim=32, num_heads=2,
                rngs=nnx.Rngs(0))
  kwargs.update(overrides)
  return vit.make_vit("vit_tiny", **kwargs)


def _images(batch=2, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, 28, 28, 1))


def _flat(model):
  return {"/".join(map(str, path)): np.asarray(v.get_value())
          for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def test_options_off_are_the_plain_vit():
  # Passing every option at its default builds the same parameters (names, shapes, values)
  # and the same function as the ViT without them.
  plain = _tiny()
  explicit = _tiny(causal=False, rope=False, qk_norm=False, mlp="gelu", layer_scale=None,
                   num_registers=0)
  a, b = _flat(plain), _flat(explicit)
  assert sorted(a) == sorted(b) and "blocks/0/attention/query/kernel" in a
  assert not any("ls1" in k or "register" in k or "w12" in k or "_ln" in k for k in a)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert isinstance(plain.blocks[0].attention, nnx.MultiHeadAttention)
  np.testing.assert_array_equal(plain(_images()), explicit(_images()))


def test_attention_module_matches_multi_head_attention():
  # Without rotation, Attention with nnx.MultiHeadAttention's parameters computes the same
  # function (with and without QK-norm, with a causal mask).
  x = jax.random.normal(jax.random.key(1), (2, 5, 16))
  mask = vit.attention_mask(causal_length=5)
  for qk_norm in (False, True):
    reference = nnx.MultiHeadAttention(2, 16, decode=False, normalize_qk=qk_norm,
                                       rngs=nnx.Rngs(3))
    ours = vit.Attention(16, 2, qk_norm=qk_norm, dtype=jnp.float32, rngs=nnx.Rngs(4))
    nnx.update(ours, nnx.state(reference, nnx.Param))
    np.testing.assert_allclose(ours(x, mask), reference(x, mask=mask), atol=1e-5)


def test_causal_output_at_t_ignores_later_tokens():
  model = _tiny(causal=True)
  tokens = model.embed_patches(_images())
  changed = tokens.at[:, 30:].add(jax.random.normal(jax.random.key(5), (2, 19, 32)))
  out, out_changed = model.encode_tokens(tokens), model.encode_tokens(changed)
  # Prefix + patches 0..29 (sequence positions 0..30) see nothing of patches >= 30.
  np.testing.assert_allclose(out[:, :31], out_changed[:, :31], atol=1e-5)
  assert not np.allclose(out[:, 31:], out_changed[:, 31:], atol=1e-3)
  # causal=False overrides it, and the pooled features (evaluation, fine-tuning) attend
  # bidirectionally: the features of the causal model are those of the same parameters
  # encoded without the mask.
  bidirectional = model.encode_tokens(tokens, causal=False)
  assert not np.allclose(bidirectional[:, :31], out[:, :31], atol=1e-3)
  np.testing.assert_allclose(model(_images()), model.pool(bidirectional), atol=1e-6)


def test_rope_logits_depend_only_on_offsets():
  head_dim = 8
  q = jax.random.normal(jax.random.key(0), (1, 6, 1, head_dim))
  k = jax.random.normal(jax.random.key(1), (1, 6, 1, head_dim))
  coordinates = np.random.default_rng(0).uniform(-1, 1, (6, 2))
  shifted = coordinates + np.array([0.3, -0.7])

  def logits(coords):
    angles = jnp.asarray(vit.rope_angles_at(coords, head_dim))[None]
    return jnp.einsum("bthd,bshd->ts", vit.apply_rope(q, angles), vit.apply_rope(k, angles))

  np.testing.assert_allclose(logits(shifted), logits(coordinates), atol=1e-5)
  assert not np.allclose(logits(coordinates * 2), logits(coordinates), atol=1e-3)
  # The reference's layout: patch centres on [-1, 1], the row's angles first, frequencies
  # 100^(-4k / head_dim): token (row 0, column 1) of a 2 x 2 grid sits at (-0.5, 0.5).
  np.testing.assert_allclose(vit.rope_angles(2, 2, 8)[1],
                             2 * np.pi * np.array([-0.5, -0.05, 0.5, 0.05]), rtol=1e-6)
  # In the model, positions come from RoPE alone: permuting the patches changes the output.
  model = _tiny(rope=True, pos_embedding="none", dim=16)
  tokens = model.embed_patches(_images())
  permuted = model.encode_tokens(tokens[:, ::-1])[:, 1:][:, ::-1]
  assert not np.allclose(permuted, model.encode_tokens(tokens)[:, 1:], atol=1e-3)
  # keep_indices rotates each kept patch by its own position (MAE's visible subset).
  keep = jnp.array([[3, 40, 7], [0, 1, 48]])
  np.testing.assert_allclose(model.encode_tokens(tokens, keep)[:, 1:],
                             _subset_reference(model, tokens, keep), atol=1e-5)


def _subset_reference(model, tokens, keep):
  """One block by hand on the kept patches with their gathered angles."""
  x = jnp.take_along_axis(tokens, keep[..., None], axis=1)
  x = jnp.concatenate([jnp.broadcast_to(model.cls_token[...], (2, 1, 16)), x], axis=1)
  angles = jnp.take_along_axis(jnp.asarray(vit.rope_angles(7, 7, 8))[None].repeat(2, 0),
                               keep[..., None], axis=1)
  angles = jnp.concatenate([jnp.zeros((2, 1, 4)), angles], axis=1)
  return model.norm(model.blocks[0](x, rope=angles))[:, 1:]


def test_qk_norm_makes_attention_invariant_to_q_and_k_scale():
  model = _tiny(qk_norm=True)
  images = _images()
  before = model(images)
  attention = model.blocks[0].attention
  for layer in (attention.query, attention.key):
    layer.kernel[...] = layer.kernel[...] * 7.0
    layer.bias[...] = layer.bias[...] * 7.0
  np.testing.assert_allclose(model(images), before, atol=1e-4)
  plain = _tiny()
  plain_before = plain(images)
  plain.blocks[0].attention.query.kernel[...] = plain.blocks[0].attention.query.kernel[...] * 7
  assert not np.allclose(plain(images), plain_before, atol=1e-3)


def test_swiglu_parameter_count():
  # DINOv2's SwiGLUFFNFused: hidden int(2/3 * 4 * 48) = 128 (a multiple of 8): w12 48 -> 256
  # and w3 128 -> 48, with biases; width 40 rounds 106 up to 112.
  block = vit.Block(48, 2, dtype=jnp.float32, rngs=nnx.Rngs(0), mlp="swiglu")
  count = sum(x.size for x in jax.tree.leaves(nnx.state(block.mlp, nnx.Param)))
  assert count == 48 * 256 + 256 + 128 * 48 + 48
  assert vit.SwiGLU(40, 160, dtype=jnp.float32, rngs=nnx.Rngs(0)).hidden_dim == 112
  x = jax.random.normal(jax.random.key(0), (3, 48))
  gate, up = jnp.split(block.mlp.w12(x), 2, axis=-1)
  np.testing.assert_allclose(block.mlp(x), block.mlp.w3(jax.nn.silu(gate) * up), atol=1e-6)


def test_layer_scale_zero_makes_a_block_the_identity():
  block = vit.Block(16, 2, dtype=jnp.float32, rngs=nnx.Rngs(0), layer_scale=1e-5)
  np.testing.assert_array_equal(block.ls1.gamma[...], np.full(16, 1e-5, np.float32))
  x = jax.random.normal(jax.random.key(0), (2, 5, 16))
  assert not np.array_equal(block(x), x)
  block.ls1.gamma[...] = jnp.zeros(16)
  block.ls2.gamma[...] = jnp.zeros(16)
  np.testing.assert_array_equal(block(x), x)


def test_registers_shapes_pooling_and_prefix():
  model = _tiny(num_registers=3)
  images = _images()
  tokens = model.embed_patches(images)
  encoded = model.encode_tokens(tokens)
  assert model.num_prefix_tokens == 4 and encoded.shape == (2, 4 + 49, 32)
  assert model.register_tokens[...].shape == (1, 3, 32)
  # Pooling and every method's [:, num_prefix_tokens:] slice drop CLS and registers.
  np.testing.assert_allclose(model(images), jnp.mean(encoded[:, 4:], axis=1), atol=1e-6)
  learned = _tiny(num_registers=2, pos_embedding="learned")
  assert learned.position_embedding[...].shape == (1, 1 + 49, 32)  # registers: no position
  assert learned.layer_index(("register_tokens",)) == 0
  # The registers take part: other register values change the patch outputs.
  model.register_tokens[...] = jax.random.normal(jax.random.key(2), (1, 3, 32))
  assert not np.allclose(model.encode_tokens(tokens)[:, 4:], encoded[:, 4:], atol=1e-3)
  # A MIM method sees only the patches after its slice (MAE's encoder on a subset too).
  keep = jnp.array([[0, 5, 9], [1, 2, 3]])
  assert model.encode_tokens(tokens, keep)[:, model.num_prefix_tokens:].shape == (2, 3, 32)


def test_options_reach_the_model_from_the_config_and_bad_values_are_one_line():
  config = tiny_config("unused", "unused")
  config.method = "mae"
  config.method_args = ml_collections.ConfigDict({"mask_ratio": 0.75})
  config.heads = ml_collections.ConfigDict({"decoder_dim": 16, "decoder_depth": 1,
                                            "decoder_num_heads": 2})
  config.model.update(dict(backbone="vit_tiny", depth=1, dim=16, num_heads=2, causal=True,
                           rope=True, pos_embedding="none", qk_norm=True, mlp="swiglu",
                           layer_scale=1e-4, num_registers=2))
  backbone = config_lib.build_model(typed(config), 1, 0).backbone
  assert backbone.causal and backbone.rope and backbone.num_registers == 2
  block = backbone.blocks[0]
  assert block.attention.query_ln is not None and isinstance(block.mlp, vit.SwiGLU)
  assert float(block.ls1.gamma[0]) == pytest.approx(1e-4)
  for key, value, message in (
      ("mlp", "relu", "model.mlp='relu'; use 'gelu' or 'swiglu'"),
      ("layer_scale", 0.0, "model.layer_scale=0.0; must be > 0"),
      ("num_registers", -1, "model.num_registers=-1; must be >= 0"),
      ("rope", False, "model.pos_embedding='none' leaves the ViT without positions")):
    bad = config.copy_and_resolve_references()
    bad.model[key] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
      typed(bad)
  # What needs width and heads together: one line from the build step.
  odd = config.copy_and_resolve_references()
  odd.model.update(dict(dim=12, num_heads=2))  # head width 6
  with pytest.raises(ConfigError, match="model.rope=True needs a head width"):
    config_lib.build_model(typed(odd), 1, 0)
  # A method on pooled features cannot use the causal mask.
  simclr = tiny_config("unused", "unused")
  simclr.model.update(dict(backbone="vit_tiny", depth=1, dim=16, num_heads=2, causal=True))
  with pytest.raises(ConfigError, match="model.causal=True with method='simclr'"):
    config_lib.build_model(typed(simclr), 1, 0)
