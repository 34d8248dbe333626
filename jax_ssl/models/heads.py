"""Projection / prediction heads (MLPs with BatchNorm), as in SimCLR, BYOL and solo-learn."""

from __future__ import annotations

import jax
from flax import nnx

from jax_ssl.models.resnet import batch_norm


class MLPHead(nnx.Module):
  """`num_layers` linear layers; every hidden layer is Linear -> BatchNorm -> ReLU.

  SimCLR's projector is MLPHead(feature_dim, 2048, 128, num_layers=2).
  """

  def __init__(self, in_features: int, hidden_features: int, out_features: int,
               num_layers: int = 2, *, rngs: nnx.Rngs):
    if num_layers < 1:
      raise ValueError(f"num_layers={num_layers}; a head needs at least one layer")
    layers = []
    features = in_features
    for _ in range(num_layers - 1):
      layers += [nnx.Linear(features, hidden_features, use_bias=False, rngs=rngs),
                 batch_norm(hidden_features, rngs=rngs), nnx.relu]
      features = hidden_features
    layers.append(nnx.Linear(features, out_features, rngs=rngs))
    self.layers = nnx.Sequential(*layers)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.layers(x)
