"""The train state: every piece of mutable training state in one pytree (Orbax saves it whole)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from jax_ssl.methods.spec import select_modules


@struct.dataclass
class TrainState:
  """step: optimizer steps taken; params: trainable `nnx.Param`s of backbone and heads;
  batch_stats: BatchNorm running moments; opt_state: optax state; method_state: what the
  method keeps between steps (queues, centers), a pytree; target_params: the EMA copies of
  the method's `target_modules` (an empty State when it has none)."""

  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  method_state: Any
  target_params: nnx.State


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
  return graphdef, TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              batch_stats=batch_stats, opt_state=optimizer.init(params),
                              method_state=method_state, target_params=target_params)
