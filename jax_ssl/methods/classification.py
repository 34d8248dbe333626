"""What the classic pretext tasks share: a classifier head and its loss/accuracy."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jax_ssl.models.heads import MLPHead


def classifier_head(in_features: int, num_classes: int, head_args: Mapping[str, Any],
                    rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"classifier": MLPHead} from the head keys classifier_hidden_dim / _num_layers."""
  return {"classifier": MLPHead(in_features, head_args["classifier_hidden_dim"], num_classes,
                                head_args["classifier_num_layers"], rngs=rngs)}


def cross_entropy_and_accuracy(logits: jax.Array, labels: jax.Array,
                               weights: jax.Array | None = None
                               ) -> tuple[jax.Array, jax.Array]:
  """Mean softmax cross-entropy and top-1 accuracy of [N, K] logits for [N] int labels; with
  `weights` [N], their weighted means (over at least one unit of weight)."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  if weights is None:
    return jnp.mean(losses), jnp.mean(correct)
  total = jnp.maximum(jnp.sum(weights), 1.0)
  return jnp.sum(weights * losses) / total, jnp.sum(weights * correct) / total
