"""What the classic pretext tasks share: a classifier head (its sizes `ClassifierHeads`)
and its loss/accuracy."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jax_ssl.config.typed import check, check_positive
from jax_ssl.models.heads import MLPHead


@dataclasses.dataclass(frozen=True)
class ClassifierHeads:
  """`heads.*` of a pretext classifier: an MLP of `classifier_num_layers` linear layers
  (BatchNorm + ReLU between them) over the task's classes. Defaults: the 2-layer, 4096-wide
  head of the ImageNet jigsaw / relative-position recipes (rotation sets its own)."""

  classifier_hidden_dim: int = 4096
  classifier_num_layers: int = 2

  def validate(self) -> None:
    check_positive("heads", self, "classifier_hidden_dim")
    check(self.classifier_num_layers >= 1,
          f"heads.classifier_num_layers={self.classifier_num_layers}; must be >= 1 (1: a "
          f"linear classifier)")


def classifier_head(in_features: int, num_classes: int, heads: ClassifierHeads,
                    rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"classifier": MLPHead(in_features -> classifier_hidden_dim -> num_classes)}."""
  return {"classifier": MLPHead(in_features, heads.classifier_hidden_dim, num_classes,
                                heads.classifier_num_layers, rngs=rngs)}


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
