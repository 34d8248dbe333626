"""Rotation prediction: classify by how much (0, 90, 180, 270 degrees) an image was turned.

Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by Predicting Image
Rotations", ICLR 2018. As in the paper, every image of the batch is fed in all four
rotations at once (sec. 2.1: "we found it beneficial"), so the batch holds 4B images with
balanced labels; the head is a classifier on the backbone features.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.methods import classification
from jax_ssl.methods.spec import Metrics, MethodSpec, NoArgs, SSLModel, StepContext

NUM_ROTATIONS = 4


def rotate_all(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[B, H, W, C] square images -> ([4B, H, W, C] rotated copies, [4B] labels 0..3).

  Label k means a counter-clockwise rotation by k * 90 degrees; rows are grouped by label.
  """
  rotated = jnp.concatenate([jnp.rot90(images, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)])
  labels = jnp.repeat(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), images.shape[0])
  return rotated, labels


@dataclasses.dataclass(frozen=True)
class Heads(classification.ClassifierHeads):
  """`heads.*`: the rotation classifier on the backbone features. Defaults: the ImageNet
  recipe's (experiments/imagenet/rotation_resnet50.py), one linear layer on the ResNet-50
  features (the hidden width matters only with classifier_num_layers > 1)."""

  classifier_hidden_dim: int = 2048
  classifier_num_layers: int = 1


def make_heads(feature_dim: int, heads: Heads, args: NoArgs,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"classifier": features -> 4 rotation logits}."""
  del args  # rotation has no hyper-parameters
  return classification.classifier_head(feature_dim, NUM_ROTATIONS, heads, rngs)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: NoArgs) -> tuple[jax.Array, Metrics, Any]:
  """Cross-entropy of the rotation classifier over the 4 rotations of every image of
  views[0]; logs the loss and the classifier's accuracy. No state, no randomness."""
  del method_state, context, args
  images, labels = rotate_all(views[0])
  logits = model.heads["classifier"](model.backbone(images))
  loss, accuracy = classification.cross_entropy_and_accuracy(logits, labels)
  return loss, {"rotation": loss, "rotation_accuracy": accuracy}, {}


SPEC = MethodSpec(
    name="rotation",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=NoArgs,
    heads_type=Heads,
)
