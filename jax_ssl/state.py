"""The train state: every piece of mutable training state in one pytree (Orbax saves it whole),
and where its arrays live on the mesh (`state_shardings`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from jax_ssl import sharding
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


# The fields `config.sharding="fsdp"` shards: what grows with the model (parameters, their
# optimizer moments and the EMA targets; ZeRO-3 / big_vision's `fsdp` rule). BatchNorm
# statistics, the method state (queues, centers: read whole by every device's loss) and the
# step stay replicated.
SHARDED_FIELDS = ("params", "opt_state", "target_params")


def state_shardings(state: TrainState, mesh: jax.sharding.Mesh, strategy: str, *,
                    min_bytes: int = sharding.FSDP_MIN_BYTES) -> TrainState:
  """A TrainState of NamedShardings, one per array of `state` (arrays or ShapeDtypeStructs):
  every array replicated (`strategy="replicated"`), or the `SHARDED_FIELDS` by the `fsdp`
  rule (`sharding.fsdp_spec`: the largest divisible dimension of each array above
  `min_bytes`) and the rest replicated. An optimizer moment has its parameter's shape and so
  its sharding: the update is elementwise on the shards."""
  replicated = sharding.replicated(mesh)
  return state.replace(**{
      field.name: (sharding.tree_shardings(getattr(state, field.name), mesh, strategy,
                                           min_bytes=min_bytes)
                   if field.name in SHARDED_FIELDS else
                   jax.tree.map(lambda _: replicated, getattr(state, field.name)))
      for field in dataclasses.fields(state)})


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
