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


def cross_entropy_and_accuracy(logits: jax.Array, labels: jax.Array
                               ) -> tuple[jax.Array, jax.Array]:
  """Mean softmax cross-entropy and top-1 accuracy of [N, K] logits for [N] int labels."""
  loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return loss, accuracy
