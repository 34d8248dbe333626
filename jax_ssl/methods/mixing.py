"""Several objectives trained at once on one shared backbone, in one jitted step.

`mix([simclr.SPEC, rotation.SPEC])` is itself a `MethodSpec` (named "simclr+rotation"): the
views are shared (each objective takes the first global views it needs, plus the multi-crop
local views if it uses them), each objective keeps its
own heads, method state, arguments and rng stream, and the loss is the weighted sum. At
most one of them may have EMA targets (the target is then the shared backbone plus that
method's own heads). Config:
`method = "simclr+rotation"`, `method_args.<name>.weight` and the objective's own arguments
under `method_args.<name>`, its head keys under `heads.<name>`. Metrics are logged per
objective as `<name>/<metric>` plus `<name>/loss` (unweighted).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
from flax import nnx

from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext

SEPARATOR = "+"


@dataclasses.dataclass(frozen=True)
class _ComponentModel:
  """What one objective sees of the shared model: the backbone and its own heads."""

  backbone: nnx.Module
  heads: Mapping[str, nnx.Module]

  def features(self, images: jax.Array) -> jax.Array:
    return self.backbone(images)


def _split_weight(args: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
  args = dict(args)
  return args.pop("weight"), args


def mix(specs: Sequence[MethodSpec]) -> MethodSpec:
  """One spec that sums the weighted objectives of `specs` over a shared backbone."""
  names = [spec.name for spec in specs]
  if len(specs) < 2 or len(set(names)) != len(names):
    raise ValueError(f"mix needs two or more different methods, got {names}")

  def num_views(method_args: Mapping[str, Any]) -> int:
    return max(spec.views_for(_split_weight(method_args[spec.name])[1]) for spec in specs)

  patch_tokens = any(spec.patch_tokens for spec in specs)

  def make_heads(backbone_or_dim, head_args, method_args, rngs):
    # With a patch-token part the factory gets the backbone; the others get its width.
    feature_dim = backbone_or_dim.feature_dim if patch_tokens else backbone_or_dim
    return {spec.name: nnx.Dict(dict(spec.make_heads(
        backbone_or_dim if spec.patch_tokens else feature_dim, head_args[spec.name],
        _split_weight(method_args[spec.name])[1], rngs)))
            for spec in specs}

  def component_context(context: StepContext, index: int, spec: MethodSpec) -> StepContext:
    target = None
    if context.target is not None and spec.target_modules:
      target = _ComponentModel(context.target.backbone, context.target.heads[spec.name])
    return context._replace(rng=jax.random.fold_in(context.rng, index), target=target)

  def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
                context: StepContext, **method_args):
    total, metrics, state_inputs = 0.0, {}, {}
    local = list(views[num_views(method_args):])
    for index, spec in enumerate(specs):
      weight, args = _split_weight({**spec.default_method_args, **method_args[spec.name]})
      component = _ComponentModel(model.backbone, model.heads[spec.name])
      own_views = list(views[:spec.views_for(args)]) + (local if spec.local_views else [])
      loss, own_metrics, state_inputs[spec.name] = spec.objective(
          component, own_views, method_state[spec.name],
          component_context(context, index, spec), **args)
      total = total + weight * loss
      metrics.update({f"{spec.name}/{key}": value for key, value in own_metrics.items()
                      if key != spec.name})  # the unweighted loss is `<name>/loss`
      metrics[f"{spec.name}/loss"] = loss
    return total, metrics, state_inputs

  def update_method_state(method_state, state_inputs, context, method_args):
    return {spec.name: spec.update_method_state(
        method_state[spec.name], state_inputs[spec.name], component_context(context, index, spec),
        _split_weight({**spec.default_method_args, **method_args[spec.name]})[1])
            for index, spec in enumerate(specs)}

  with_targets = [spec for spec in specs if spec.target_modules]
  if len(with_targets) > 1:
    raise ValueError(f"mix: at most one method with EMA targets, got "
                     f"{[spec.name for spec in with_targets]}")
  # The target copies the shared backbone and the method's own heads (under heads/<name>/).
  target_modules = tuple(
      path if not path.startswith("heads/") else f"heads/{spec.name}/{path[len('heads/'):]}"
      for spec in with_targets for path in spec.target_modules)

  return MethodSpec(
      name=SEPARATOR.join(names),
      num_views=num_views,
      make_heads=make_heads,
      objective=objective,
      init_method_state=lambda method_args, head_args: {
          spec.name: spec.init_method_state(_split_weight(method_args[spec.name])[1],
                                            head_args[spec.name]) for spec in specs},
      default_method_args={spec.name: {"weight": 1.0, **spec.default_method_args}
                           for spec in specs},
      target_modules=target_modules,
      update_method_state=update_method_state,
      base_momentum=lambda args: (with_targets[0].base_momentum(args[with_targets[0].name])
                                  if with_targets else None),
      local_views=any(spec.local_views for spec in specs),
      patch_tokens=patch_tokens,
      # The EMA target's method decides (DINO mixed with a pretext task evaluates the teacher).
      evaluation_encoder=with_targets[0].evaluation_encoder if with_targets else "online",
  )
