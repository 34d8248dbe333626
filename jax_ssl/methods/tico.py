"""TiCo: transformation invariance plus covariance contrast against a running covariance.

Zhu et al., "TiCo: Transformation Invariance and Covariance Contrast for Self-Supervised
Visual Representation Learning", 2022 (arXiv:2206.10698), Algorithm 1, as lightly's ImageNet
benchmark runs it (benchmarks/imagenet/resnet50/tico.py, `TiCoLoss`, `TiCoProjectionHead`):
the online branch is backbone -> projector (2048 -> 4096 -> 256, Linear-BN-ReLU-Linear) on
the first view; the second view goes through the EMA (momentum) copies of both
(`target_modules`, momentum `base_momentum` -> 1 on a cosine), behind a stop-gradient. The
loss is `losses.tico`, one direction (online view 1 against target view 2), as lightly's.

The running covariance C is the method state: `[D, D]`, zeros at the start. The objective
reads C_{t-1} and computes, inside the loss, C_t = beta C_{t-1} + (1 - beta) B from this
batch's normalised online projections (B behind a stop-gradient); it returns those
projections, and `update_method_state` moves the state to the same C_t once per optimizer
step. Under `jax.jit` over the global batch, B spans every device's examples, so the state
and the loss do not depend on the device count (tests/methods/test_tico.py). With gradient
accumulation the state moves by the global batch once per step (the step concatenates the
micro-batches' projections); in "micro_batch" mode each micro-batch's loss uses its own B,
in "exact" mode (this spec declares `embed` and `embedding_loss`) the whole batch's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods.spec import (Metrics, MethodSpec, ProjectorHeads, SSLModel, StepContext,
                                  embed_views, objective_from_embeddings, projector_heads)


@dataclasses.dataclass(frozen=True)
class Args:
  """TiCo's hyper-parameters (`--config.method_args.KEY`); defaults: lightly's ImageNet
  benchmark (beta 0.9 and rho 8 are also the paper's recommended values).

  Attributes:
    beta: the EMA coefficient of the running covariance C, in [0, 1).
    rho: the weight of the covariance contrast term, >= 0.
    base_momentum: the target's EMA momentum at step 0, raised to 1 on a cosine over the run,
      in [0, 1].
  """

  beta: float = 0.9
  rho: float = 8.0
  base_momentum: float = 0.99

  def validate(self) -> None:
    check(0.0 <= self.beta < 1.0, f"method_args.beta={self.beta!r}; must be in [0, 1) (the "
          f"running covariance's EMA coefficient; 1 would keep it at zero)")
    check(self.rho >= 0.0, f"method_args.rho={self.rho!r}; must be >= 0 (the weight of the "
          f"covariance contrast term)")
    check(0.0 <= self.base_momentum <= 1.0,
          f"method_args.base_momentum={self.base_momentum!r}; must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Heads(ProjectorHeads):
  """The projector (`--config.heads.KEY`); defaults: lightly's `TiCoProjectionHead`, the
  paper's 2048 -> 4096 -> 256 MLP (Linear-BN-ReLU-Linear)."""

  projector_hidden_dim: int = 4096
  projector_output_dim: int = 256
  projector_num_layers: int = 2


def embed(model: SSLModel, views: Sequence[jax.Array], context: StepContext
          ) -> tuple[jax.Array, jax.Array]:
  """(online projections of view 1 [B, D], stop-gradient target projections of view 2 [B, D])."""
  (online,) = embed_views(model, views[:1])
  (target,) = embed_views(context.target, views[1:2])
  return online, jax.lax.stop_gradient(target)


def embedding_loss(embeddings: tuple[jax.Array, jax.Array], method_state: Any,
                   context: StepContext, args: Args
                   ) -> tuple[jax.Array, Metrics, dict[str, jax.Array]]:
  """`losses.tico` against the running covariance C_{t-1} of the state; the state inputs are
  the online projections [B, D] that move it."""
  del context
  online, target = embeddings
  loss = losses.tico(online, target, method_state["covariance"], args.beta, args.rho)
  return loss, {"tico": loss}, {"online": jax.lax.stop_gradient(online)}


objective = objective_from_embeddings(embed, embedding_loss)


def init_method_state(args: Args, heads: Heads) -> dict[str, jax.Array]:
  """C = 0 [D, D] (the paper's and lightly's start), D the projector's output width."""
  del args
  dim = heads.projector_output_dim
  return {"covariance": jnp.zeros((dim, dim), jnp.float32)}


def update_method_state(method_state: Any, state_inputs: Any, context: StepContext,
                        args: Args) -> dict[str, jax.Array]:
  """C <- beta C + (1 - beta) B of the step's online projections (the global batch)."""
  del context
  return {"covariance": losses.tico_covariance_update(
      method_state["covariance"], state_inputs["online"], args.beta)}


SPEC = MethodSpec(
    name="tico",
    num_views=2,
    make_heads=projector_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
    init_method_state=init_method_state,
    update_method_state=update_method_state,
    target_modules=("backbone", "heads/projector"),
    embed=embed,
    embedding_loss=embedding_loss,
)
