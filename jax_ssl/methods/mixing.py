"""Several objectives trained at once on one shared backbone, in one jitted step.

`mix([simclr.SPEC, rotation.SPEC])` is itself a `MethodSpec` (named "simclr+rotation"): the
views are shared (each objective takes the first global views it needs, plus the multi-crop
local views if it uses them), each objective keeps its
own heads, method state, arguments and rng stream, and the loss is the weighted sum. At
most one of them may have EMA targets (the target is then the shared backbone plus that
method's own heads), and at most one a frozen teacher (`load_teacher`). Config:
`method = "simclr+rotation"`, `method_args.<name>.weight` and the objective's own arguments
under `method_args.<name>`, its head keys under `heads.<name>`: the mixed spec's `args_type`
and `heads_type` are frozen dataclasses made by `mix`, one field per component holding that
component's own Args (plus `weight`) or Heads, so `typed.from_mapping` checks every key and
calls every component's `validate()`; each component's functions receive their own Args
without `weight`. Metrics are logged per objective as `<name>/<metric>` plus `<name>/loss`
(unweighted).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
from flax import nnx

from jax_ssl.errors import ConfigError
from jax_ssl.methods.spec import MethodSpec, SSLModel, StepContext

SEPARATOR = "+"


@dataclasses.dataclass(frozen=True)
class _ComponentModel:
  """What one objective sees of the shared model: the backbone and its own heads."""

  backbone: nnx.Module
  heads: Mapping[str, nnx.Module]

  def features(self, images: jax.Array) -> jax.Array:
    return self.backbone(images)


def _validate_as(section: str, name: str, validate: Callable[[], None]) -> None:
  """Runs a component's `validate()`, its message's `section.KEY` named `section.<name>.KEY`
  (the component's own checks know their keys, not where the mix puts them)."""
  try:
    validate()
  except ConfigError as e:
    raise ConfigError(str(e).replace(f"{section}.", f"{section}.{name}.", 1)) from None


def _component_type(spec: MethodSpec, section: str, base: type, extra: list) -> type:
  """A frozen dataclass: `base` (the component's Args or Heads) plus the `extra` fields, its
  messages under `section.<name>.`."""
  base_validate = getattr(base, "validate", None)

  def validate(self):
    if base_validate is not None:
      _validate_as(section, spec.name, lambda: base_validate(self))
    if hasattr(self, "weight") and not self.weight >= 0:
      raise ConfigError(f"{section}.{spec.name}.weight={self.weight!r}; must be >= 0 (the "
                        f"weight of {spec.name}'s loss in the sum)")

  return dataclasses.make_dataclass(
      f"{spec.name}_{base.__name__}", extra, bases=(base,), frozen=True,
      namespace={"validate": validate, "__doc__": f"{base.__doc__ or ''} (in a mix)"})


def _sections(cls_name: str, types: dict[str, type], doc: str) -> type:
  """A frozen dataclass with one field per component, each defaulting to its defaults."""
  fields = [(name, kind, dataclasses.field(default_factory=kind))
            for name, kind in types.items()]
  return dataclasses.make_dataclass(cls_name, fields, frozen=True,
                                    namespace={"__doc__": doc, "validate": lambda self: None})


def own_args(spec: MethodSpec, mixed_args: Any) -> Any:
  """The component `spec`'s own Args in the mixed Args (its section without `weight`)."""
  section = getattr(mixed_args, spec.name)
  return spec.args_type(**{field.name: getattr(section, field.name)
                           for field in dataclasses.fields(spec.args_type)})


def mix(specs: Sequence[MethodSpec]) -> MethodSpec:
  """One spec that sums the weighted objectives of `specs` over a shared backbone."""
  names = [spec.name for spec in specs]
  if len(specs) < 2 or len(set(names)) != len(names):
    raise ValueError(f"mix needs two or more different methods, got {names}")
  with_targets = [spec for spec in specs if spec.target_modules]
  if len(with_targets) > 1:
    raise ValueError(f"mix: at most one method with EMA targets, got "
                     f"{[spec.name for spec in with_targets]}")
  with_teacher = [spec for spec in specs if spec.load_teacher is not None]
  if len(with_teacher) > 1:
    raise ValueError(f"mix: at most one method with a frozen teacher, got "
                     f"{[spec.name for spec in with_teacher]}")
  mixed_name = SEPARATOR.join(names)
  args_type = _sections(
      "MixedArgs", {spec.name: _component_type(spec, "method_args", spec.args_type,
                                               [("weight", float, 1.0)]) for spec in specs},
      f"method_args of {mixed_name}: each component's own Args plus its loss `weight`.")
  heads_type = _sections(
      "MixedHeads", {spec.name: _component_type(spec, "heads", spec.heads_type, [])
                     for spec in specs},
      f"heads of {mixed_name}: each component's own Heads.")

  def num_views(args) -> int:
    return max(spec.views_for(own_args(spec, args)) for spec in specs)

  patch_tokens = any(spec.patch_tokens for spec in specs)

  def teacher_of(spec: MethodSpec, teacher: Any) -> dict[str, Any]:
    return {"teacher": teacher} if spec.load_teacher is not None else {}

  def make_heads(backbone_or_dim, heads, args, rngs, teacher=None):
    # With a patch-token part the factory gets the backbone; the others get its width.
    feature_dim = backbone_or_dim.feature_dim if patch_tokens else backbone_or_dim
    return {spec.name: nnx.Dict(dict(spec.make_heads(
        backbone_or_dim if spec.patch_tokens else feature_dim, getattr(heads, spec.name),
        own_args(spec, args), rngs, **teacher_of(spec, teacher))))
            for spec in specs}

  def init_method_state(args, heads, teacher=None):
    return {spec.name: spec.init_method_state(own_args(spec, args), getattr(heads, spec.name),
                                              **teacher_of(spec, teacher))
            for spec in specs}

  def component_context(context: StepContext, index: int, spec: MethodSpec) -> StepContext:
    target = None
    if context.target is not None and spec.target_modules:
      target = _ComponentModel(context.target.backbone, context.target.heads[spec.name])
    return context._replace(rng=jax.random.fold_in(context.rng, index), target=target,
                            teacher=context.teacher if spec.load_teacher else None)

  def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
                context: StepContext, args: Any):
    total, metrics, state_inputs = 0.0, {}, {}
    local = list(views[num_views(args):])
    for index, spec in enumerate(specs):
      own = own_args(spec, args)
      component = _ComponentModel(model.backbone, model.heads[spec.name])
      own_views = list(views[:spec.views_for(own)]) + (local if spec.local_views else [])
      loss, own_metrics, state_inputs[spec.name] = spec.objective(
          component, own_views, method_state[spec.name],
          component_context(context, index, spec), own)
      total = total + getattr(args, spec.name).weight * loss
      metrics.update({f"{spec.name}/{key}": value for key, value in own_metrics.items()
                      if key != spec.name})  # the unweighted loss is `<name>/loss`
      metrics[f"{spec.name}/loss"] = loss
    return total, metrics, state_inputs

  def update_method_state(method_state, state_inputs, context, args):
    return {spec.name: spec.update_method_state(
        method_state[spec.name], state_inputs[spec.name], component_context(context, index, spec),
        own_args(spec, args))
            for index, spec in enumerate(specs)}

  # The target copies the shared backbone and the method's own heads (under heads/<name>/).
  target_modules = tuple(
      path if not path.startswith("heads/") else f"heads/{spec.name}/{path[len('heads/'):]}"
      for spec in with_targets for path in spec.target_modules)
  target_momentum = None
  if with_targets and with_targets[0].target_momentum is not None:
    target_momentum = lambda args, step, total_steps: with_targets[0].target_momentum(
        own_args(with_targets[0], args), step, total_steps)
  load_teacher = None
  if with_teacher:
    load_teacher = lambda args: with_teacher[0].load_teacher(own_args(with_teacher[0], args))

  return MethodSpec(
      name=mixed_name,
      num_views=num_views,
      make_heads=make_heads,
      objective=objective,
      args_type=args_type,
      heads_type=heads_type,
      init_method_state=init_method_state,
      target_modules=target_modules,
      update_method_state=update_method_state,
      base_momentum=lambda args: (with_targets[0].base_momentum(own_args(with_targets[0], args))
                                  if with_targets else None),
      local_views=any(spec.local_views for spec in specs),
      patch_tokens=patch_tokens,
      # The EMA target's method decides (DINO mixed with a pretext task evaluates the teacher).
      evaluation_encoder=with_targets[0].evaluation_encoder if with_targets else "online",
      load_teacher=load_teacher,
      target_momentum=target_momentum,
  )
