"""The online linear probe: a classifier trained alongside pretraining, one optional component.

With `config.online_probe` a linear head `heads["online_probe"]` is trained on
stop-gradient backbone features of the first view and the batch's labels, and the step logs
`online_probe/accuracy` and `online_probe/loss` (solo-learn's online classifier, BYOL's
App. C.1): a live read of the features' linear separability without stopping the run. Its
four parts live here and nowhere else:
  * `make_head`: the head (built after the method's heads, so those start as without it);
  * `with_optimizer`: its own optimizer (Adam at a constant rate: the probe only has to track
    the features, whatever the pretraining optimizer, schedule, weight decay or LARS);
  * `loss`: its cross-entropy, added to the method's loss inside the step (no gradient
    reaches the backbone);
  * the metric names of `loss`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

HEAD = "online_probe"
LEARNING_RATE = 1e-2  # Adam, constant


def make_head(feature_dim: int, num_classes: int, rngs: nnx.Rngs) -> nnx.Module:
  """The linear classifier over `num_classes` on `feature_dim` features."""
  return nnx.Linear(feature_dim, num_classes, rngs=rngs)


def optimizer() -> optax.GradientTransformation:
  """The probe head's optimizer."""
  return optax.adam(LEARNING_RATE)


def _is_probe(path) -> bool:
  keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
  return keys[:2] == ["heads", HEAD]


def with_optimizer(model_optimizer: optax.GradientTransformation
                   ) -> optax.GradientTransformation:
  """`model_optimizer` for every parameter but the probe head's, which get `optimizer()`
  (solo-learn gives its classifier its own parameter group)."""
  return optax.multi_transform(
      {"model": model_optimizer, HEAD: optimizer()},
      lambda params: jax.tree_util.tree_map_with_path(
          lambda path, _: HEAD if _is_probe(path) else "model", params))


def loss(graphdef: nnx.GraphDef, params: nnx.State, batch_stats: nnx.State,
         images: jax.Array, labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy of the linear heads["online_probe"] on stop-gradient backbone features.

  The features of `images` (the first view, [B, S, S, C]) come from the backbone in train
  mode (batch statistics, as the objective's pass; its BatchNorm update is discarded)
  under `stop_gradient` parameters, so no gradient of this loss reaches the backbone and
  the labels [B] only train the probe. The features are standardised per batch before the
  linear layer (MAE's probe: BatchNorm without affine), so the probe's learning rate suits
  any backbone's feature scale.

  References:
    Grill et al., "Bootstrap Your Own Latent" (BYOL), NeurIPS 2020, App. C.1; da Costa et
    al., "solo-learn", JMLR 2022 (online classifier); He et al., "Masked Autoencoders Are
    Scalable Vision Learners", CVPR 2022, App. A.2 (BatchNorm without affine in the probe).

  Returns:
    (mean cross-entropy, {"online_probe/loss", "online_probe/accuracy"} on this batch).
  """
  frozen = nnx.merge(graphdef, jax.lax.stop_gradient(params), batch_stats, copy=True)
  frozen.train()
  features = jax.lax.stop_gradient(frozen.features(images))
  features = (features - jnp.mean(features, axis=0)) * jax.lax.rsqrt(
      jnp.var(features, axis=0) + 1e-6)
  probe = nnx.merge(graphdef, params, batch_stats, copy=True).heads[HEAD]
  logits = probe(features)
  cross_entropy = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return cross_entropy, {f"{HEAD}/loss": cross_entropy, f"{HEAD}/accuracy": accuracy}
