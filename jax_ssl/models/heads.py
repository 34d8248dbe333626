"""Projection / prediction heads (MLPs with BatchNorm), as in SimCLR, BYOL and solo-learn,
and the weight-normalised prototype layer of DINO and SwAV."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import backends
from jax_ssl.models.resnet import batch_norm


class MLPHead(nnx.Module):
  """`num_layers` linear layers; every hidden layer is Linear -> BatchNorm -> ReLU.

  SimCLR's projector is MLPHead(feature_dim, 2048, 128, num_layers=2). DINO's head MLP is
  MLPHead(..., num_layers=3, use_bn=False, activation=nnx.gelu) (hidden layers then have
  a bias, as a Linear not followed by BatchNorm should).
  """

  def __init__(self, in_features: int, hidden_features: int, out_features: int,
               num_layers: int = 2, *, use_bn: bool = True,
               activation: Callable[[jax.Array], jax.Array] = nnx.relu, rngs: nnx.Rngs):
    if num_layers < 1:
      raise ValueError(f"num_layers={num_layers}; a head needs at least one layer")
    layers = []
    features = in_features
    for _ in range(num_layers - 1):
      layers.append(nnx.Linear(features, hidden_features, use_bias=not use_bn, rngs=rngs))
      if use_bn:
        layers.append(batch_norm(hidden_features, rngs=rngs))
      layers.append(activation)
      features = hidden_features
    layers.append(nnx.Linear(features, out_features, rngs=rngs))
    self.layers = nnx.Sequential(*layers)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.layers(x)


class Prototypes(nnx.Module):
  """A bias-free linear layer whose weight columns are unit vectors: W = V / ||V|| per column.

  DINO's last layer (`weight_norm` with g fixed to 1, "norm_last_layer") and SwAV's
  prototypes (normalised every step). With `frozen` true the layer passes no gradient to V
  (DINO freezes it for the first epoch, SwAV for the first iterations); since only V's
  direction matters, weight decay on V then changes nothing either.
  """

  def __init__(self, in_features: int, num_prototypes: int, *, rngs: nnx.Rngs):
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), (in_features, num_prototypes), jnp.float32))

  def normalized_kernel(self) -> jax.Array:
    kernel = self.kernel[...]
    return kernel * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(kernel), axis=0), 1e-24))

  def __call__(self, x: jax.Array, frozen: jax.Array | bool = False) -> jax.Array:
    kernel = self.normalized_kernel()
    kernel = jnp.where(frozen, jax.lax.stop_gradient(kernel), kernel)
    return x @ kernel


def backend_conv(*args, **kwargs) -> nnx.Conv:
  """`nnx.Conv(*args, **kwargs)` from the speed backend the model is built under
  (`backends.current()`: `config.build_model` builds the heads inside `backends.use`), so a
  method's convolutional head gets the backend's convolution as the backbone does."""
  return backends.current().conv(*args, **kwargs)
