"""RSPNet: relative speed perception plus appearance-focused video instance discrimination.

Chen et al., "RSPNet: Relative Speed Perception for Unsupervised Video Representation
Learning", AAAI 2021; the reference code is PeihaoChen/RSPNet (moco/builder_diffspeed_diffloss.py
`MoCoDiffLossTwoFc`, moco/split_wrapper.py `MultiTaskWrapper`, pretrain.py). Each video gives
three clips (the method's views, sampled on the host with `config.clips.speed_pattern="rspnet"`,
jax_ssl/data/clips.py):
  0. the query clip, at speed s;
  1. a key clip of the same video at the same speed s;
  2. a key clip at another speed s' != s (the reference plays clip 1's frames at s').
The query goes through the online backbone and two heads, "appearance" and "motion" (linear
layers on the pooled features, outputs L2-normalised in the loss, as `MultiTaskWrapper` with
fc_type "linear"); the keys through their EMA copies (MoCo's key encoder, `target_modules`).
The loss is appearance_weight * A-VID + speed_weight * RSP:
  * A-VID (`losses.rspnet_appearance`): the query's appearance embedding against each key
    clip's, both positives whatever their speed, each with its own cross-entropy against
    the queue of earlier videos' keys (ce1 + ce2);
  * RSP (`losses.rspnet_speed_ranking`): the query's motion embedding is more similar to the
    same-speed key's than to the other-speed key's by `margin` (torch's MarginRankingLoss on
    the similarities over tau).
Which key has the query's speed is read from `context.clip_speeds` (the sampler's [B, 3]
speeds), not assumed from the clip order; a video without one key of each kind adds nothing
to RSP (metric `speed_triplets`: the mean number of ranked pairs per video, 1 under the
"rspnet" pattern). After the step the key of the other-speed clip (the reference's k_neg_A:
one key per video) is enqueued; the queue is method state, moved once per step from the
global batch (queue.py), so every device holds it and a resumed run continues it.

Differences from the reference, all kept small: the EMA is the step's (after the optimizer
update; the reference moves the key encoder before the forward pass), at a constant momentum
`base_momentum` as the reference (no cosine ramp); the two key clips share one key-encoder
pass (BatchNorm statistics over both; the reference runs them separately, with shuffled BN
on 8 GPUs); and each clip gets its own augmentation draw (the reference's other-speed clip
is clip 1's frames, so shares its crop and colours).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl import losses, optim
from jax_ssl.config.typed import check
from jax_ssl.errors import ConfigError
from jax_ssl.methods import queue
from jax_ssl.methods.byol import check_momentum
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, SSLModel, StepContext,
                                  map_by_crop_size, objective_from_embeddings)
from jax_ssl.models.heads import MLPHead

NUM_CLIPS = 3  # query, same-speed key, other-speed key
HEADS = ("appearance", "motion")


@dataclasses.dataclass(frozen=True)
class Args:
  """RSPNet's hyper-parameters (`--config.method_args.KEY`); defaults: the reference's
  (config/pretrain/moco-train-base.jsonnet, pretrain.py).

  Attributes:
    temperature: tau of both tasks, > 0 (0.07).
    queue_size: K, the keys the queue holds (the A-VID negatives), >= 1 (16384).
    base_momentum: the key encoder's EMA momentum, constant over the run, in [0, 1] (0.999).
    margin: the RSP ranking margin on the similarities over tau, >= 0 (2.0).
    appearance_weight: the A-VID loss's weight, >= 0 (loss_lambda.A = 1).
    speed_weight: the RSP loss's weight, >= 0 (loss_lambda.M = 1).
  """

  temperature: float = 0.07
  queue_size: int = 16384
  base_momentum: float = 0.999
  margin: float = 2.0
  appearance_weight: float = 1.0
  speed_weight: float = 1.0

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (InfoNCE's tau)")
    queue.check_size(self.queue_size)
    check_momentum(self.base_momentum)
    check(self.margin >= 0, f"method_args.margin={self.margin!r}; must be >= 0 (the speed "
                            f"ranking margin)")
    for name in ("appearance_weight", "speed_weight"):
      check(getattr(self, name) >= 0,
            f"method_args.{name}={getattr(self, name)!r}; must be >= 0 (a task's weight)")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """The two heads (`--config.heads.KEY`), each `projector_num_layers` layers to
  `projector_output_dim`: the reference's fc_type "linear" (1 layer to 128); 2 layers is
  its "mlp" (with BatchNorm here)."""

  projector_hidden_dim: int = 512
  projector_output_dim: int = 128
  projector_num_layers: int = 1


def make_heads(feature_dim: int, heads: Heads, args: Args, rngs: nnx.Rngs
               ) -> dict[str, nnx.Module]:
  """{"appearance": MLPHead, "motion": MLPHead} on the pooled backbone features."""
  del args
  return {name: MLPHead(feature_dim, heads.projector_hidden_dim, heads.projector_output_dim,
                        heads.projector_num_layers, rngs=rngs) for name in HEADS}


def _both_heads(model: SSLModel):
  """clips -> [N, 2 D]: the appearance then the motion embedding, one backbone pass."""
  def apply(clips: jax.Array) -> jax.Array:
    features = model.backbone(clips)
    return jnp.concatenate([model.heads[name](features) for name in HEADS], axis=-1)
  return apply


def embed(model: SSLModel, views: Sequence[jax.Array], context: StepContext
          ) -> dict[str, jax.Array]:
  """{"query": [B, 2 D] the online embeddings of clip 0, "keys": [B, 2, 2 D] the key
  encoder's of clips 1 and 2 (stop-gradient)}; appearance then motion along the last axis."""
  (query,) = map_by_crop_size(_both_heads(model), views[:1])
  keys = map_by_crop_size(_both_heads(context.target), views[1:NUM_CLIPS])
  return {"query": query, "keys": jax.lax.stop_gradient(jnp.stack(keys, axis=1))}


def embedding_loss(embeddings: dict[str, jax.Array], method_state: Any, context: StepContext,
                   args: Args) -> tuple[jax.Array, Metrics, dict[str, jax.Array]]:
  """appearance_weight * A-VID + speed_weight * RSP (module docstring); the state input is
  the appearance key of each video's first key clip at another speed than the query's."""
  if context.clip_speeds is None:
    raise ConfigError("method=rspnet needs video clips with playback speeds: a video dataset "
                      "(moving_fashion_mnist, ucf101, ...) with clips.speeds=(1, 2) and "
                      "clips.speed_pattern='rspnet'")
  query, keys = embeddings["query"], embeddings["keys"]
  dim = query.shape[-1] // 2
  query_appearance, query_motion = query[:, :dim], query[:, dim:]
  keys_appearance, keys_motion = keys[..., :dim], keys[..., dim:]
  speeds = context.clip_speeds[:, :NUM_CLIPS]
  same_speed = speeds[:, 1:] == speeds[:, :1]  # [B, 2]
  queue_keys = jax.lax.stop_gradient(method_state["queue"]["embeddings"])
  appearance = losses.rspnet_appearance(
      query_appearance, [keys_appearance[:, k] for k in range(NUM_CLIPS - 1)], queue_keys,
      args.temperature)
  speed = losses.rspnet_speed_ranking(query_motion, keys_motion, same_speed, args.temperature,
                                      args.margin)
  loss = args.appearance_weight * appearance + args.speed_weight * speed
  ranked = same_speed[:, :, None] & ~same_speed[:, None, :]
  metrics = {"rspnet_appearance": appearance, "rspnet_speed": speed,
             "speed_accuracy": losses.speed_ranking_accuracy(query_motion, keys_motion,
                                                             same_speed),
             "speed_triplets": jnp.mean(jnp.sum(ranked, axis=(1, 2)).astype(jnp.float32))}
  other_speed = jnp.argmin(same_speed, axis=1)  # the first key clip at another speed
  enqueued = jnp.take_along_axis(keys_appearance, other_speed[:, None, None], axis=1)[:, 0]
  return loss, metrics, {"keys": enqueued}


objective = objective_from_embeddings(embed, embedding_loss)


def init_method_state(args: Args, heads: Heads) -> dict[str, Any]:
  """The queue: random unit keys (MoCo's initialisation)."""
  return {"queue": queue.init(args.queue_size, heads.projector_output_dim)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, Any]:
  """Enqueues each video's other-speed appearance key [B, D]."""
  del context, args
  return {"queue": queue.enqueue(method_state["queue"], state_inputs["keys"])}


def constant_momentum(args: Args, step: jax.Array, total_steps: int) -> jax.Array:
  """The key encoder's momentum: `base_momentum` at every step (MoCo's, and RSPNet's)."""
  return optim.linear_momentum(args.base_momentum, args.base_momentum, step, total_steps)


SPEC = MethodSpec(
    name="rspnet",
    num_views=NUM_CLIPS,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    target_modules=("backbone", "heads/appearance", "heads/motion"),
    target_momentum=constant_momentum,
    embed=embed,
    embedding_loss=embedding_loss,
)
