"""The generic train step: a pure function `(state, batch, rng) -> (state, metrics)`.

It is the same for every method: make views on device, run the method's objective on the
merged model, differentiate w.r.t. the online parameters only, apply the optax update and
return the new state. The trainer wraps it in `jax.jit` with donated state and explicit
shardings.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jax_ssl.data import augment
from jax_ssl.methods.spec import MethodSpec, StepContext
from jax_ssl.state import TrainState


_OBJECTIVE_STREAM = 1  # fold_in tag of the objective's key within a step


def make_train_step(graphdef: nnx.GraphDef, method: MethodSpec, method_args: Mapping[str, Any],
                    optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                    view_configs: Sequence[augment.AugmentConfig]):
  """Returns the pure train step for `method` with its hyper-parameters bound.

  rng is the run's base key (raw uint32 key data, so it can be a global array); the step's
  key is `fold_in(rng, state.step)`, so the
  randomness of step k is the same whether or not the run was resumed before it.
  """
  objective = functools.partial(method.objective, **method_args)

  def train_step(state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array):
    step_rng = jax.random.fold_in(jax.random.wrap_key_data(rng), state.step)
    views = augment.make_views(step_rng, batch["image"], view_configs)
    # The objective's own randomness (pretext tasks, SIGReg directions) is independent of
    # the views' (which use step_rng itself).
    context = StepContext(rng=jax.random.fold_in(step_rng, _OBJECTIVE_STREAM), step=state.step)

    def loss_fn(params):
      model = nnx.merge(graphdef, params, state.batch_stats, copy=True)
      model.train()
      loss, metrics, method_state = objective(model, views, state.method_state, context)
      return loss, (metrics, nnx.state(model, nnx.BatchStat), method_state)

    (loss, (metrics, batch_stats, method_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    # A non-finite loss or gradient leaves the state as it was (the step counter still
    # advances); the trainer then stops, or skips the update if configured to.
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    metrics = {**metrics, "loss": loss, "learning_rate": schedule(state.step),
               "grad_norm": grad_norm, "nonfinite": 1.0 - finite.astype(jnp.float32)}
    new_state = state.replace(
        step=state.step + 1, params=keep(params, state.params),
        batch_stats=keep(batch_stats, state.batch_stats),
        opt_state=keep(opt_state, state.opt_state),
        method_state=keep(method_state, state.method_state))
    return new_state, metrics

  return train_step


def make_feature_fn(graphdef: nnx.GraphDef):
  """Pure `(params, batch_stats, images) -> backbone features` in eval mode."""

  def features(params, batch_stats, images):
    model = nnx.merge(graphdef, params, batch_stats)
    model.eval()
    return model.features(images)

  return features
