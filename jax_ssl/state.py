"""The train state: every piece of mutable training state in one pytree (Orbax saves it whole)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from jax_ssl.methods.spec import select_modules, with_modules


@struct.dataclass
class TrainState:
  """step: optimizer steps taken; params: trainable `nnx.Param`s of backbone and heads;
  batch_stats: BatchNorm running moments; opt_state: optax state; method_state: what the
  method keeps between steps (queues, centers), a pytree; target_params: the EMA copies of
  the method's `target_modules` (an empty State when it has none); target_batch_stats: the
  BatchNorm running moments of those target modules, moved by the target's own forward
  passes (train mode, as DINO's teacher: its buffers are its own, never averaged), so the
  EMA target can be evaluated (`eval.encoder=target`)."""

  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  method_state: Any
  target_params: nnx.State
  target_batch_stats: nnx.State


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
  """(graphdef, params, batch_stats); refuses models with other kinds of state."""
  graphdef, params, batch_stats, *rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  if any(jax.tree.leaves(r) for r in rest):
    raise ValueError("the model holds state other than Param and BatchStat; add it to TrainState")
  return graphdef, params, batch_stats


def create_train_state(model: nnx.Module, optimizer: optax.GradientTransformation,
                       method_state: Any, target_modules: Sequence[str] = ()
                       ) -> tuple[nnx.GraphDef, TrainState]:
  """The initial state; EMA targets start as copies of the online modules."""
  graphdef, params, batch_stats = split_model(model)
  target_params = jax.tree.map(jnp.copy, select_modules(params, target_modules))
  target_batch_stats = jax.tree.map(jnp.copy, select_modules(batch_stats, target_modules,
                                                             missing_ok=True))
  return graphdef, TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              batch_stats=batch_stats, opt_state=optimizer.init(params),
                              method_state=method_state, target_params=target_params,
                              target_batch_stats=target_batch_stats)


ENCODERS = ("online", "target")


def encoder_weights(state: TrainState, encoder: str) -> tuple[nnx.State, nnx.State]:
  """(params, batch_stats) of the model to evaluate: "online" (the trained parameters) or
  "target" (the EMA target's parameters and BatchNorm statistics swapped into the
  modules that have them; DINO evaluates its teacher)."""
  if encoder == "online":
    return state.params, state.batch_stats
  if encoder != "target":
    raise ValueError(f"encoder={encoder!r}; use one of {ENCODERS}")
  return (with_modules(state.params, state.target_params),
          with_modules(state.batch_stats, state.target_batch_stats))
