import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl.models import heads, resnet


def _num_params(module):
  return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


@pytest.mark.parametrize("name, stem, expected", [
    # torchvision's resnet18/resnet50 without the fc layer (ImageNet stem); the CIFAR stem
    # swaps the 7x7x3x64 conv (9408 weights) for a 3x3x3x64 one (1728).
    ("resnet18", "imagenet", 11_176_512),
    ("resnet18", "cifar", 11_176_512 - 9408 + 1728),
    ("resnet50", "imagenet", 23_508_032),
])
def test_parameter_counts_match_torchvision(name, stem, expected):
  model = resnet.make_backbone(name, width=None, stem=stem, in_channels=3, rngs=nnx.Rngs(0))
  assert _num_params(model) == expected


def test_output_shapes_and_stem_downsampling():
  small = resnet.make_backbone("resnet_small", width=8, stem="cifar", in_channels=1, rngs=nnx.Rngs(0))
  assert small(jnp.zeros((2, 28, 28, 1))).shape == (2, 64)
  assert small.feature_dim == 64
  big = resnet.make_backbone("resnet50", width=8, stem="imagenet", in_channels=3, rngs=nnx.Rngs(0))
  assert big(jnp.zeros((1, 64, 64, 3))).shape == (1, 8 * 8 * 4)


def test_stride2_stem_is_the_cifar_stem_at_stride_2():
  x = jax.random.normal(jax.random.key(1), (3, 28, 28, 1))
  model = resnet.make_backbone("resnet_small", width=8, stem="stride2", in_channels=1,
                               rngs=nnx.Rngs(0))
  # The same parameters as the cifar stem (a 3x3 conv), the stages at half the side.
  cifar = resnet.make_backbone("resnet_small", width=8, stem="cifar", in_channels=1,
                               rngs=nnx.Rngs(0))
  assert _num_params(model) == _num_params(cifar)
  assert model.feature_map(x).shape == (3, 2, 2, 64) and cifar.feature_map(x).shape[1:3] == (4, 4)
  assert model.output_grid(28, 28) == (2, 2) and model.output_grid(12, 12) == (1, 1)
  # The stem: a 3x3 convolution at stride 2 with padding 1 (torchvision's Conv2d(1, 8, 3, 2, 1)).
  expected = jax.lax.conv_general_dilated(x, model.stem_conv.kernel[...], (2, 2), ((1, 1), (1, 1)),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(model.stem_conv(x), expected, rtol=1e-5, atol=1e-5)
  assert expected.shape == (3, 14, 14, 8)


def test_final_features_widen_the_representation_with_a_1x1_conv():
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  plain = resnet.make_backbone("resnet_small", width=4, stem="cifar", in_channels=1, rngs=nnx.Rngs(0))
  wide = resnet.make_backbone("resnet_small", width=4, stem="cifar", in_channels=1,
                              final_features=48, rngs=nnx.Rngs(0))
  assert wide.feature_dim == 48 and wide(x).shape == (4, 48)
  # Same stages (same seed draws them first), plus a 32 -> 48 1x1 conv and its BatchNorm.
  assert _num_params(wide) == _num_params(plain) + 32 * 48 + 2 * 48
  # The representation is relu(BN(conv1x1(last stage))) averaged over positions.
  wide_stages = nnx.relu(wide.stem_bn(wide.stem_conv(x)))
  for block in wide.blocks:
    wide_stages = block(wide_stages)
  expected = jnp.mean(nnx.relu(wide.final(wide_stages)), axis=(1, 2))
  np.testing.assert_allclose(wide(x), expected, rtol=1e-5, atol=1e-6)
  assert float(jnp.min(wide(x))) >= 0.0


def test_unknown_backbone_and_stem_are_clear_errors():
  with pytest.raises(ValueError, match="model.backbone='resnet19' is unknown"):
    resnet.make_backbone("resnet19", width=None, stem="cifar", in_channels=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="stem='tiny'"):
    resnet.make_backbone("resnet18", width=None, stem="tiny", in_channels=3, rngs=nnx.Rngs(0))


def test_batchnorm_uses_batch_statistics_in_train_mode_only():
  x = jax.random.normal(jax.random.key(0), (8, 12, 12, 1)) * 5 + 3
  model = resnet.make_backbone("resnet_small", width=4, stem="cifar", in_channels=1, rngs=nnx.Rngs(0))
  model.train()
  pre = model.stem_conv(x)
  out = model.stem_bn(pre)
  # Train mode: normalised with the batch moments; running mean moves 10% towards them.
  np.testing.assert_allclose(jnp.mean(out, axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(model.stem_bn.mean[...], 0.1 * jnp.mean(pre, axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-6)
  model.eval()
  before = model.stem_bn.mean[...]
  eval_out = model.stem_bn(pre)
  np.testing.assert_array_equal(model.stem_bn.mean[...], before)  # eval: no update
  assert not np.allclose(eval_out, out)


def test_mlp_head_layers():
  head = heads.MLPHead(16, 32, 8, num_layers=3, rngs=nnx.Rngs(0))
  assert head(jnp.ones((4, 16))).shape == (4, 8)
  # 16x32 + BN(32: scale, bias) + 32x32 + BN + 32x8 + bias 8
  assert _num_params(head) == 16 * 32 + 64 + 32 * 32 + 64 + 32 * 8 + 8
  with pytest.raises(ValueError, match="num_layers=0"):
    heads.MLPHead(16, 32, 8, num_layers=0, rngs=nnx.Rngs(0))
