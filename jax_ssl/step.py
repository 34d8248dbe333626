"""The generic train step: a pure function `(state, batch, rng) -> (state, metrics)`.

It is the same for every method: make views on device, run the method's objective on the
merged model, differentiate w.r.t. the online parameters only, apply the optax update, move
the EMA targets and the method state, and return the new state. The trainer wraps it in `jax.jit` with donated state and explicit
shardings.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from jax_ssl.data import augment
from jax_ssl import online_probe as online_probe_lib
from jax_ssl import optim
from jax_ssl.methods.spec import (MethodSpec, StepContext, select_modules, views_per_device,
                                  with_modules)
from jax_ssl.state import TrainState


_OBJECTIVE_STREAM = 1  # fold_in tag of the objective's key within a step
def _micro_batches(x: jax.Array, count: int) -> jax.Array:
  """[B, ...] -> [count, B / count, ...], micro-batch a = rows a, a + count, a + 2 count, ...

  Interleaved rather than contiguous so that every device keeps an equal share of every
  micro-batch (the batch axis is sharded in contiguous blocks).
  """
  return jnp.swapaxes(x.reshape(x.shape[0] // count, count, *x.shape[1:]), 0, 1)


def _micro_side(side: Mapping[str, jax.Array], count: int) -> dict[str, jax.Array]:
  """`_micro_batches` of each per-example side input (labels, clip speeds)."""
  return {key: _micro_batches(value, count) for key, value in side.items()}


def _concat_micro_batches(x: jax.Array) -> jax.Array:
  """Inverse of `_micro_batches`: [count, B / count, ...] -> [B, ...] in the original order."""
  return jnp.swapaxes(x, 0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


# grad_accum_mode: "micro_batch" (each micro-batch's loss; the mean of their gradients) or
# "exact" (the whole batch's loss, GradCache: `_exact_accumulation`).
GRAD_ACCUM_MODES = ("micro_batch", "exact")


def _exact_accumulation(loss_fn, grad_fn, method: MethodSpec, method_args: Any,
                        state: TrainState, views: Sequence[jax.Array],
                        side: Mapping[str, jax.Array], objective_rng: jax.Array, count: int, teacher_graphdef: Any = None):
  """Gradient accumulation with the loss of the whole batch (GradCache), for methods that
  declare `embed` and `embedding_loss`.

  Pass 1: every micro-batch's embeddings, without gradient. Then the loss of the whole batch
  on all of them, as without accumulation, and its gradient d loss / d embeddings. Pass 2:
  each micro-batch's embeddings again, and the VJP of those cotangents to the parameters
  (the gradient of <embeddings, cotangents>), summed over the micro-batches. Memory holds one
  micro-batch's activations plus every embedding; the model runs forward twice. The gradient
  is the whole batch's, not the mean of the micro-batch losses' gradients: every negative,
  every batch statistic of the loss (Barlow Twins, VICReg) spans the global batch. What stays
  per micro-batch is BatchNorm in the model: it normalises each micro-batch with that
  micro-batch's statistics (the embeddings then differ from the full batch's, and the
  gradient through those statistics is each micro-batch's), and its running averages move
  once per micro-batch (pass 2), as in "micro_batch" mode.

  `loss_fn` / `grad_fn` are the step's (with `objective_fn` in place of the method's
  objective); the online probe's gradient is the mean over micro-batches, as in
  "micro_batch" mode.

  References:
    Gao, Zhang, Han & Callan, "Scaling Deep Contrastive Learning Batch Size under Memory
    Limited Setup", RepL4NLP 2021 (GradCache).

  Returns:
    (grads, batch_stats, target_batch_stats, loss, metrics, state_inputs).
  """
  micro = (tuple(_micro_batches(v, count) for v in views), jnp.arange(count),
           _micro_side(side, count))

  def embed_only(model, views, method_state, context):
    del method_state
    return jnp.zeros((), jnp.float32), {}, method.embed(model, views, context)

  def first_pass(_, micro):
    micro_views, micro_index, micro_side = micro
    _, (_, _, _, embeddings, _) = loss_fn(
        state.params, list(micro_views), state.batch_stats, state.target_batch_stats,
        micro_index, micro_side, objective_fn=embed_only)
    return None, jax.lax.stop_gradient(embeddings)

  _, embeddings = jax.lax.scan(first_pass, None, micro)
  embeddings = jax.tree.map(_concat_micro_batches, embeddings)  # [B, ...], batch order
  # The loss's rng is the one it has without accumulation (micro-batch 0's).
  context = StepContext(rng=jax.random.fold_in(objective_rng, 0), step=state.step, target=None,
                        teacher=teacher_graphdef, clip_speeds=side.get("clip_speeds"))

  def whole_batch_loss(embeddings):
    loss, metrics, state_inputs = method.embedding_loss(embeddings, state.method_state, context,
                                                        method_args)
    return loss, (metrics, state_inputs)

  (loss, (metrics, state_inputs)), cotangents = jax.value_and_grad(
      whole_batch_loss, has_aux=True)(embeddings)
  cotangents = jax.tree.map(lambda c: _micro_batches(c.astype(jnp.float32), count), cotangents)

  def second_pass(carry, micro):
    grad_sum, batch_stats, target_batch_stats = carry
    micro_views, micro_index, micro_side, micro_cotangents = micro

    def pullback(model, views, method_state, context):
      del method_state
      products = jax.tree.map(lambda e, c: jnp.sum(e.astype(jnp.float32) * c),
                              method.embed(model, views, context), micro_cotangents)
      # x count: the summed gradients are divided by count below (for the probe's mean).
      return count * sum(jax.tree.leaves(products)), {}, {}

    (_, (probe_metrics, batch_stats, target_batch_stats, _, _)), grads = grad_fn(
        state.params, list(micro_views), batch_stats, target_batch_stats, micro_index,
        micro_side, objective_fn=pullback)
    return ((jax.tree.map(jnp.add, grad_sum, grads), batch_stats, target_batch_stats),
            probe_metrics)

  zeros = jax.tree.map(jnp.zeros_like, state.params)
  (grad_sum, batch_stats, target_batch_stats), probe_metrics = jax.lax.scan(
      second_pass, (zeros, state.batch_stats, state.target_batch_stats), (*micro, cotangents))
  grads = jax.tree.map(lambda g: g / count, grad_sum)
  metrics = {**metrics, **jax.tree.map(lambda m: jnp.mean(m, axis=0), probe_metrics)}
  return grads, batch_stats, target_batch_stats, loss, metrics, state_inputs


def make_train_step(graphdef: nnx.GraphDef, method: MethodSpec, method_args: Any,
                    optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                    view_configs: Sequence[augment.AugmentConfig], *, total_steps: int = 1,
                    grad_accum_steps: int = 1, grad_accum_mode: str = "micro_batch",
                    online_probe: bool = False, mesh: Mesh | None = None,
                    teacher_graphdef: Any = None):
  """Returns the pure train step for `method` with its hyper-parameters bound.

  `method_args` is the method's typed Args (an instance of `method.args_type`, built from
  the config once by `config.method_args`): every function of the spec receives it.
  `teacher_graphdef`: for methods with `load_teacher`, the loaded teacher's graphdef (its
  parameters are in the method state), handed to the objective as `context.teacher`.

  rng is the run's base key (raw uint32 key data, so it can be a global array); the step's
  key is `fold_in(rng, state.step)`, so the randomness of step k is the same whether or not
  the run was resumed before it.

  With `grad_accum_steps` = A > 1 the views of the global batch are made as without
  accumulation, split into A interleaved micro-batches, and the gradients of the A
  objectives averaged (a `lax.scan`, so memory holds one micro-batch's activations);
  BatchNorm statistics thread through the micro-batches. Everything that happens once per
  optimizer step happens once: the optax update, the EMA target update, and the method
  state update (`update_method_state` sees the state inputs of all micro-batches
  concatenated, so a queue or a center moves by the whole global batch).
  That is `grad_accum_mode="micro_batch"`: each micro-batch's objective is computed on the
  micro-batch alone, so whatever couples the examples of a batch (NT-Xent / InfoNCE
  negatives, Barlow Twins' and VICReg's statistics, Sinkhorn, SIGReg) sees B / A examples,
  while the learning rate is scaled by the global batch. `grad_accum_mode="exact"`
  (methods that declare `embed` and `embedding_loss`) differentiates the whole batch's loss
  instead (`_exact_accumulation`); BatchNorm still normalises per micro-batch.

  With `online_probe` the batch also carries "label" [B] and heads["online_probe"] is
  trained on the first view (`online_probe.loss`); the logged "loss" stays the method's.

  `mesh`: the mesh the step is jitted over (the batch sharded over its data axis). With
  several devices the views' encoder passes then run per device (`spec.map_by_crop_size`):
  the gradients are all-reduced once per step whatever the number of crop sizes. None
  (a step jitted without shardings): the same values, computed on the global arrays.
  """
  def objective(model, views, method_state, context):
    return method.objective(model, views, method_state, context, method_args)

  if grad_accum_mode not in GRAD_ACCUM_MODES:
    raise ValueError(f"grad_accum_mode={grad_accum_mode!r}; use one of {GRAD_ACCUM_MODES}")
  if grad_accum_mode == "exact" and (method.embed is None or method.embedding_loss is None):
    raise ValueError(f"grad_accum_mode='exact' needs a method that declares embed and "
                     f"embedding_loss; {method.name} does not")
  base_momentum = (method.base_momentum(method_args)
                   if method.target_modules and method.target_momentum is None else None)

  def train_step(state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array):
    step_rng = jax.random.fold_in(jax.random.wrap_key_data(rng), state.step)
    views = augment.views_of_batch(step_rng, batch, view_configs)  # host views or images
    # The objective's own randomness (pretext tasks, SIGReg directions) is independent of
    # the views' (which use step_rng itself).
    objective_rng = jax.random.fold_in(step_rng, _OBJECTIVE_STREAM)
    def loss_fn(params, views, batch_stats, target_batch_stats, micro_index, side,
                objective_fn=objective):
      model = nnx.merge(graphdef, params, batch_stats, copy=True)
      model.train()
      target = None
      if method.target_modules:
        # The EMA target: the model with the target modules' parameters and BatchNorm
        # statistics swapped in, behind a stop-gradient. Its BatchNorm normalises with batch
        # statistics (train mode) and moves its own running averages, as DINO's teacher
        # (its buffers are its own, not averaged): kept so the target can be evaluated.
        target = nnx.merge(graphdef, with_modules(
            jax.lax.stop_gradient(params), jax.lax.stop_gradient(state.target_params)),
                           with_modules(batch_stats, target_batch_stats), copy=True)
        target.train()
      context = StepContext(rng=jax.random.fold_in(objective_rng, micro_index),
                            step=state.step, target=target, teacher=teacher_graphdef,
                            clip_speeds=side.get("clip_speeds"))
      loss, metrics, state_inputs = objective_fn(model, views, state.method_state, context)
      total = loss
      if online_probe:
        probe_loss, probe_metrics = online_probe_lib.loss(graphdef, params, batch_stats,
                                                          views[0], side["label"])
        total, metrics = loss + probe_loss, {**metrics, **probe_metrics}
      new_target_batch_stats = (
          select_modules(nnx.state(target, nnx.BatchStat), method.target_modules,
                         missing_ok=True) if target is not None else target_batch_stats)
      return total, (metrics, nnx.state(model, nnx.BatchStat), new_target_batch_stats,
                     state_inputs, loss)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    # Per-example inputs besides the views, micro-batched with them: the labels (online
    # probe) and, for clips, each view's playback speed (StepContext.clip_speeds).
    side = {"label": batch["label"] if online_probe
            else jnp.zeros((views[0].shape[0],), jnp.int32)}
    if "speeds" in batch:
      side["clip_speeds"] = jnp.asarray(batch["speeds"], jnp.int32)
    if grad_accum_mode == "exact" and grad_accum_steps > 1:
      grads, batch_stats, target_batch_stats, loss, metrics, state_inputs = _exact_accumulation(
          loss_fn, grad_fn, method, method_args, state, views, side, objective_rng,
          grad_accum_steps, teacher_graphdef)
    elif grad_accum_steps == 1:
      (_, (metrics, batch_stats, target_batch_stats, state_inputs, loss)), grads = grad_fn(
          state.params, views, state.batch_stats, state.target_batch_stats, 0, side)
    else:
      def accumulate(carry, micro):
        grad_sum, batch_stats, target_batch_stats = carry
        micro_views, micro_index, micro_side = micro
        (_, (metrics, batch_stats, target_batch_stats, inputs, loss)), grads = grad_fn(
            state.params, list(micro_views), batch_stats, target_batch_stats, micro_index,
            micro_side)
        return ((jax.tree.map(jnp.add, grad_sum, grads), batch_stats, target_batch_stats),
                (loss, metrics, inputs))

      micro_views = tuple(_micro_batches(v, grad_accum_steps) for v in views)
      zeros = jax.tree.map(jnp.zeros_like, state.params)
      (grad_sum, batch_stats, target_batch_stats), (losses, metrics, state_inputs) = jax.lax.scan(
          accumulate, (zeros, state.batch_stats, state.target_batch_stats),
          (micro_views, jnp.arange(grad_accum_steps), _micro_side(side, grad_accum_steps)))
      grads = jax.tree.map(lambda g: g / grad_accum_steps, grad_sum)
      loss = jnp.mean(losses)
      metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
      state_inputs = jax.tree.map(_concat_micro_batches, state_inputs)

    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    context = StepContext(rng=objective_rng, step=state.step, target=None,
                          teacher=teacher_graphdef, clip_speeds=side.get("clip_speeds"))
    method_state = method.update_method_state(state.method_state, state_inputs, context,
                                              method_args)
    target_params = state.target_params
    if method.target_modules:
      if method.target_momentum is not None:
        momentum = method.target_momentum(method_args, state.step, total_steps)
      else:
        momentum = optim.cosine_momentum(base_momentum, state.step, total_steps)
      target_params = optax.incremental_update(
          select_modules(params, method.target_modules), state.target_params, 1.0 - momentum)
      metrics = {**metrics, "target_momentum": momentum}
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
        method_state=keep(method_state, state.method_state),
        target_params=keep(target_params, state.target_params),
        target_batch_stats=keep(target_batch_stats, state.target_batch_stats))
    return new_state, metrics

  @functools.wraps(train_step)
  def train_step_with_views_mesh(state: TrainState, batch: Mapping[str, jax.Array],
                                 rng: jax.Array):
    with views_per_device(mesh):  # read while the step is traced
      return train_step(state, batch, rng)

  return train_step_with_views_mesh


def make_feature_fn(graphdef: nnx.GraphDef, last_blocks: int = 1, avgpool: bool = False):
  """Pure `(params, batch_stats, images) -> backbone features` in eval mode; with
  `last_blocks` > 1 or `avgpool`, a ViT's linear-probe features (`probe_features`)."""

  def features(params, batch_stats, images):
    model = nnx.merge(graphdef, params, batch_stats)
    model.eval()
    if last_blocks > 1 or avgpool:
      return model.backbone.probe_features(images, last_blocks, avgpool)
    return model.features(images)

  return features
