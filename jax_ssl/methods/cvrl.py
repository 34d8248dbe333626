"""CVRL: InfoNCE over the global batch of two clips per video.

Qian et al., "Spatiotemporal Contrastive Video Representation Learning", CVPR 2021; the
reference code is tensorflow/models official/projects/video_ssl. CVRL is SimCLR on clips:
two clips of each video, each with its own temporally consistent spatial augmentation (one
crop, flip and colour draw for all its frames: jax_ssl/data/video_augment.py), through a 3-D
backbone and an MLP projector, every other clip of the global batch a negative. What makes it
CVRL besides the objective is the data side, set in its experiment files:
  * temporal sampling: the two clips' starts drawn by CVRL's decreasing-density interval
    sampler (`config.clips.starts="cvrl"`, jax_ssl/data/clips.py), 16 frames at stride 2;
  * the projector: 3 hidden layers of 2048 (Dense-BN-ReLU) then 128 (video_ssl.py
    `VideoSSLModel`: hidden_layer_num=3, hidden_dim=2048, projection_dim=128): `Heads`
    below, `projector_num_layers=4`;
  * temperature 0.1 (video_ssl.py `SSLLosses`).
The loss is `losses.cvrl`, the reference's `loss_a + loss_b`: SimCLR's NT-Xent summed over
the two directions, 2 x `losses.nt_xent` (so `method=simclr` on clips is the same objective
at half the loss scale). Under jit over global arrays the similarity matrix spans every
device, as the reference's `tpu_cross_replica_concat`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, StepContext,
                                  embed_projections, objective_from_embeddings, projector_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """CVRL's hyper-parameters (`--config.method_args.KEY`).

  Attributes:
    temperature: tau of the InfoNCE, > 0; CVRL's 0.1.
  """

  temperature: float = 0.1

  def validate(self) -> None:
    check(self.temperature > 0,
          f"method_args.temperature={self.temperature!r}; must be > 0 (InfoNCE's tau)")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """The projector (`--config.heads.KEY`): CVRL's 3 hidden layers of 2048, then 128."""

  projector_hidden_dim: int = 2048
  projector_output_dim: int = 128
  projector_num_layers: int = 4


embed = embed_projections  # the projections of both clips, 2 x [B, D]


def embedding_loss(embeddings: Sequence[jax.Array], method_state: Any, context: StepContext,
                   args: Args) -> tuple[jax.Array, Metrics, dict]:
  """`losses.cvrl` of the two clips' projections; no state."""
  del method_state, context
  z1, z2 = embeddings
  loss = losses.cvrl(z1, z2, args.temperature)
  return loss, {"cvrl": loss}, {}


objective = objective_from_embeddings(embed, embedding_loss)


SPEC = MethodSpec(
    name="cvrl",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    embed=embed,
    embedding_loss=embedding_loss,
)
