"""The declarative method spec: what a self-supervised method adds to the shared trainer.

A method is data plus a pure loss. The trainer builds `SSLModel(backbone, heads)`, makes
`num_views` augmented views on device, and calls `objective(model, views, method_state,
context, args)` inside the jitted, differentiated step, where `args` is the method's own
frozen `Args` dataclass (its hyper-parameters, `--config.method_args.KEY`; the heads' sizes
are its `Heads` dataclass, `--config.heads.KEY`): an objective receives only its own typed
arguments, with their defaults and `validate()` declared next to it. Everything a method keeps
between steps lives in `method_state`, a pytree inside the train state (so Orbax saves it),
moved once per optimizer step by `update_method_state` from what the objective returned;
`context` carries what the step knows and a loss may need (its rng, the step number, the
EMA target model of methods that declare `target_modules`).
Several specs combine into one with `jax_ssl.methods.mix` (mixing.py) (one step, one shared backbone).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from jax_ssl.config.typed import check_positive
from jax_ssl.models import batch_norm
from jax_ssl.models.heads import MLPHead
from jax_ssl.sharding import DATA_AXIS

Metrics = Mapping[str, jax.Array]
# (model, views, method_state, context, args) -> (loss, metrics, state_inputs)
Objective = Callable[[Any, Sequence[jax.Array], Any, "StepContext", Any],
                     tuple[jax.Array, Metrics, Any]]
# (model, views, context) -> per-example embeddings (a pytree, example axis first)
Embed = Callable[[Any, Sequence[jax.Array], Any], Any]
# (embeddings, method_state, context, args) -> (loss, metrics, state_inputs)
EmbeddingLoss = Callable[[Any, Any, "StepContext", Any], tuple[jax.Array, Metrics, Any]]
# (method_state, state_inputs, context, args) -> new method_state
StateUpdate = Callable[[Any, Any, "StepContext", Any], Any]
# (feature_dim, heads, args, rngs) -> {head name: module}; the backbone module instead of
# feature_dim for specs with `patch_tokens`; with `load_teacher`, also `teacher=` (what it
# loaded)
HeadsFactory = Callable[..., Mapping[str, nnx.Module]]


@dataclasses.dataclass(frozen=True)
class NoArgs:
  """The `Args` of a method without hyper-parameters."""

  def validate(self) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class NoHeads:
  """The `Heads` of a method without head sizes to set."""

  def validate(self) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class ProjectorHeads:
  """An MLP projector on the backbone features (SimCLR's g: hidden -> output, `num_layers`
  linear layers, BatchNorm + ReLU between them)."""

  projector_hidden_dim: int = 2048
  projector_output_dim: int = 128
  projector_num_layers: int = 2

  def validate(self) -> None:
    check_positive("heads", self, "projector_hidden_dim", "projector_output_dim",
              "projector_num_layers")


@dataclasses.dataclass(frozen=True)
class ProjectorPredictorHeads(ProjectorHeads):
  """`ProjectorHeads` plus a 2-layer predictor D -> predictor_hidden_dim -> D (SimSiam, BYOL,
  MoCo v3)."""

  predictor_hidden_dim: int = 512

  def validate(self) -> None:
    super().validate()
    check_positive("heads", self, "predictor_hidden_dim")


def keep_method_state(method_state: Any, state_inputs: Any, context: Any, args: Any) -> Any:
  """The default `update_method_state`: methods without state keep it as it is."""
  del state_inputs, context, args
  return method_state


def no_method_state(args: Any, heads: Any) -> Any:
  """The default `init_method_state`: an empty state."""
  del args, heads
  return {}


def args_base_momentum(args: Any) -> float:
  """The default `MethodSpec.base_momentum`: the `base_momentum` field of the method's Args."""
  return args.base_momentum


class StepContext(NamedTuple):
  """What the train step hands every objective besides the model, views and method state.

  Attributes:
    rng: a typed PRNG key for this step and objective (already folded with the step, so a
      resumed run draws the same randomness); the same on every device.
    step: the optimizer step being computed (int32 scalar).
    target: for methods with `target_modules`, the model with those modules' parameters
      replaced by their EMA (momentum) copies, in train mode, behind a stop-gradient (no
      gradient can reach the target); None otherwise.
    teacher: for methods with `load_teacher`, the frozen teacher's graphdef (its
      parameters are in the method state); None otherwise.
    clip_speeds: for video datasets, int32 [B, V]: the playback speed of each view (clip) of
      each example, as the host's clip sampler drew it (jax_ssl/data/clips.py; frame step
      = clips.stride * speed), for the batch (or micro-batch) the objective sees; None for
      images.
  """

  rng: jax.Array
  step: jax.Array
  target: Any = None
  teacher: Any = None
  clip_speeds: jax.Array | None = None


def objective_from_embeddings(embed: Embed, embedding_loss: EmbeddingLoss) -> Objective:
  """The objective `embedding_loss(embed(model, views, context), method_state, context, args)`
  of a method that declares `MethodSpec.embed` and `.embedding_loss`."""

  def objective(model, views, method_state, context, args):
    return embedding_loss(embed(model, views, context), method_state, context, args)

  return objective


def select_modules(params: nnx.State, paths: Sequence[str], *,
                   missing_ok: bool = False) -> nnx.State:
  """The sub-state of `params` under each "a/b" module path (the EMA target's parameters).

  With `missing_ok`, paths absent from `params` are left out (the BatchNorm statistics of
  a target module that has no BatchNorm, e.g. a ViT backbone).
  """
  selected = {}
  for path in paths:
    keys = path.split("/")
    node, out, present = params, selected, True
    for key in keys[:-1]:
      if missing_ok and key not in node:
        present = False
        break
      node = node[key]
      out = out.setdefault(key, {})
    if present and (not missing_ok or keys[-1] in node):
      out[keys[-1]] = node[keys[-1]]

  def prune(tree: dict) -> dict:  # no empty sections from paths that were absent
    pruned = {k: prune(v) if isinstance(v, dict) else v for k, v in tree.items()}
    return {k: v for k, v in pruned.items() if not (isinstance(v, dict) and not v)}

  return nnx.State(prune(selected) if missing_ok else selected)


def with_modules(params: nnx.State, replacement: nnx.State) -> nnx.State:
  """A copy of `params` whose subtrees present in `replacement` are taken from it."""
  merged = jax.tree.map(lambda x: x, params)

  def overlay(into, source):
    for key in source.keys():
      if isinstance(source[key], nnx.State) and not isinstance(source[key], nnx.Variable):
        overlay(into[key], source[key])
      else:
        into[key] = source[key]

  overlay(merged, replacement)
  return merged


@dataclasses.dataclass(frozen=True)
class Teacher:
  """A frozen network a method reads but never trains (BEiT's tokenizer), loaded by the
  build step (`MethodSpec.load_teacher`), never by the method: `graphdef` is its structure
  (handed to the objective in `StepContext.teacher`), `params` its parameters (they go into
  the method state, so a resumed run restores them from its own checkpoint), `info` what
  the heads need to know of it (e.g. its codebook size)."""

  graphdef: Any
  params: Any
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """What the trainer needs to know about a method.

  Attributes:
    name: registry key (`config.method`).
    num_views: augmented views of each image the objective consumes: an int, or a function
      of the method's Args for methods where it is a hyper-parameter (LeJEPA).
    make_heads: `(feature_dim, heads, args, rngs) -> {name: module}`, the method's trainable
      heads on top of the backbone features (`teacher=` too for methods with `load_teacher`).
    objective: `(model, views, method_state, context, args) -> (loss, metrics,
      state_inputs)`, the pure loss; gradients flow to the online parameters.
    args_type: the frozen dataclass of the objective's hyper-parameters with their defaults
      and `validate()` (`config.method_args`); the objective receives an instance.
    heads_type: the frozen dataclass of the head sizes (`config.heads`), handed to make_heads.
    init_method_state: `(args, heads) -> ` the initial method state pytree (queues,
      centers...), sized from the arguments (`teacher=` too with `load_teacher`).
    update_method_state: `(method_state, state_inputs, context, args) -> new state`,
      called once per optimizer step with the `state_inputs` the objective returned (per
      example, example axis first; under gradient accumulation those of all micro-batches
      concatenated, so queues and centers move by the global batch once per step). The
      objective itself only reads `method_state`. Default: keep the state.
    target_modules: module paths ("backbone", "heads/projector") that have an EMA target
      copy, updated inside the step after each optimizer update with momentum
      `base_momentum(args)` (default: `args.base_momentum`) raised to 1.0 on a cosine over
      the run (BYOL); the objective reads them through `context.target`.
    local_views: whether the objective also takes multi-crop local views: with
      `augment.local_crops.num` = N > 0 the views are the `num_views` global views followed
      by N smaller local crops (DINO, SwAV). Methods without it refuse local crops.
    patch_tokens: whether the objective works on the backbone's patch tokens (masked image
      modelling: `embed_patches` / `encode_tokens` / `pool` of `models/vit.py`): it needs a
      ViT backbone, and `make_heads` receives the backbone module itself instead of its
      feature_dim (a decoder needs its width, patch size, channels and token grid).
    backbones: the `model.backbone` names the method works with, if it is tied to some
      (the VQ tokenizer's encoder); empty: any backbone (any ViT with `patch_tokens`).
    evaluation_encoder: what `eval.encoder="method"` evaluates, as the method's paper does:
      "online" (the trained parameters) or "target" (the EMA target: DINO's teacher).
    embed, embedding_loss: for methods whose objective is `embedding_loss(embed(model,
      views, context), method_state, context, args)` (see `objective_from_embeddings`):
      `embed` maps a batch's views to a pytree of per-example embeddings (example axis
      first; no gradient through anything but the model) and `embedding_loss` returns
      (loss, metrics, state_inputs) from those of the whole batch. Declaring them allows
      `grad_accum_mode="exact"` (`step.py`: GradCache, the loss of the whole batch with the
      activations of one micro-batch at a time). None: not declared.
    target_momentum: `(args, step, total_steps) -> momentum` of the EMA target for
      methods whose schedule is not BYOL's cosine (I-JEPA's and data2vec 2.0's linear
      ramps, `optim.linear_momentum`); None: `base_momentum(args)` raised to 1.0 on a
      cosine over the run (`optim.cosine_momentum`).
    load_teacher: `(args) -> Teacher` for methods that read a frozen network trained
      elsewhere (BEiT's tokenizer). Only the build step calls it (it reads files); the
      method gets the result as arguments: `make_heads(..., teacher=)`,
      `init_method_state(..., teacher=)` and `context.teacher` (its graphdef) in the step.
  """

  name: str
  num_views: int | Callable[[Any], int]
  make_heads: HeadsFactory
  objective: Objective
  args_type: type = NoArgs
  heads_type: type = NoHeads
  init_method_state: Callable[..., Any] = no_method_state
  target_modules: tuple[str, ...] = ()
  update_method_state: StateUpdate = keep_method_state
  base_momentum: Callable[[Any], float] = args_base_momentum
  local_views: bool = False
  patch_tokens: bool = False
  backbones: tuple[str, ...] = ()
  evaluation_encoder: str = "online"
  embed: Embed | None = None
  embedding_loss: EmbeddingLoss | None = None
  load_teacher: Callable[[Any], Teacher] | None = None
  target_momentum: Callable[[Any, jax.Array, int], jax.Array] | None = None

  def views_for(self, args: Any) -> int:
    """The number of global views under the method's `args` (an `args_type` instance)."""
    if callable(self.num_views):
      return self.num_views(args)
    return self.num_views


class SSLModel(nnx.Module):
  """Backbone plus named heads; `features` is what evaluation uses."""

  def __init__(self, backbone: nnx.Module, heads: Mapping[str, nnx.Module]):
    self.backbone = backbone
    self.heads = nnx.Dict(dict(heads))

  def features(self, images: jax.Array) -> jax.Array:
    return self.backbone(images)


def projector_heads(feature_dim: int, heads: ProjectorHeads, args: Any,
                    rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"projector": MLPHead} of the sizes in `heads` (a ProjectorHeads)."""
  del args  # the projector's shape is all in `heads`
  return {"projector": MLPHead(feature_dim, heads.projector_hidden_dim,
                               heads.projector_output_dim, heads.projector_num_layers,
                               rngs=rngs)}


def projector_predictor_heads(feature_dim: int, heads: ProjectorPredictorHeads, args: Any,
                              rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """`projector_heads` plus a 2-layer predictor D -> predictor_hidden_dim -> D on its output
  (SimSiam, BYOL, MoCo v3)."""
  modules = projector_heads(feature_dim, heads, args, rngs)
  output_dim = heads.projector_output_dim
  modules["predictor"] = MLPHead(output_dim, heads.predictor_hidden_dim, output_dim,
                                 num_layers=2, rngs=rngs)
  return modules


def stack_views(views: Sequence[jax.Array]) -> jax.Array:
  """V x [B, ...] views of one size -> [B * V, ...], example-major: row b * V + v is view v
  of example b.

  The batch axis is sharded over devices in contiguous blocks, so example-major rows keep
  every view of an example on the device that holds the example: no example moves between
  devices (a view-major concatenation, [V * B, ...], would put view v of the examples of
  device d on device (v * B + d * B / n) // (B / n) and make XLA move them: all-to-all /
  collective-permute, or an all-gather of every view)."""
  stacked = jnp.stack(views, axis=1)  # [B, V, ...]
  return stacked.reshape(stacked.shape[0] * stacked.shape[1], *stacked.shape[2:])


def unstack_views(stacked: jax.Array, num_views: int) -> list[jax.Array]:
  """Inverse of `stack_views`: [B * V, ...] example-major -> V x [B, ...]."""
  per_example = stacked.reshape(stacked.shape[0] // num_views, num_views, *stacked.shape[1:])
  return [per_example[:, v] for v in range(num_views)]


_VIEWS_MESH: list[Mesh | None] = []


@contextlib.contextmanager
def views_per_device(mesh: Mesh | None) -> Iterator[None]:
  """While a train step is traced inside: `map_by_crop_size` runs its passes per device over
  `mesh`'s data axis (a mesh of several devices; None or one device: as a plain function
  of the global arrays). The train step enters it (`make_train_step(mesh=...)`)."""
  _VIEWS_MESH.append(mesh)
  try:
    yield
  finally:
    _VIEWS_MESH.pop()


def map_by_crop_size(fn: Callable[[jax.Array], jax.Array],
                     views: Sequence[jax.Array]) -> list[jax.Array]:
  """`fn` on all views of each crop size at once (one pass per size), split back per view:
  V x [B, ...] -> V x [B, ...] outputs, in the order of `views`.

  One pass per size means BatchNorm statistics over every view of that size in the global
  batch (SimCLR's global BN; multi-crop's global and local groups, as DINO and SwAV do).
  The views of a size go in example-major (`stack_views`), so each device runs the views of
  its own examples; `fn` must treat rows independently but for the statistics of
  `models/batch_norm.BatchNorm` (the backbones and heads do), whose set of rows is the same
  in any order.

  Inside `views_per_device(mesh)` with several devices, the passes of all crop sizes run in
  one `jax.shard_map` over the data axis (BatchNorm sums its statistics over it:
  `batch_norm.cross_device`). Why: under plain jit each pass's weight gradients are summed
  over the devices where that pass contracts the batch, so with two crop sizes (multi-crop)
  XLA all-reduces every gradient twice; from inside the shard_map the parameters enter
  replicated and unchecked (`check_vma=False`), and the transpose sums their cotangent over
  the devices once, after the passes' local gradients are added: one all-reduce of the
  gradients per step (tests/methods/test_spec.py reads it from the compiled HLO).
  """
  sizes = list(dict.fromkeys(view.shape[1:] for view in views))  # in order of appearance
  groups = [[i for i, view in enumerate(views) if view.shape[1:] == size] for size in sizes]
  stacks = [stack_views([views[i] for i in group]) for group in groups]
  mesh = _VIEWS_MESH[-1] if _VIEWS_MESH else None
  if mesh is None or mesh.shape[DATA_AXIS] == 1:
    outs = [fn(stack) for stack in stacks]
  else:
    collected = []

    def per_device(*local_stacks):
      with batch_norm.cross_device(DATA_AXIS) as running:
        local_outs = [fn(stack) for stack in local_stacks]
      collected.append(running)
      return local_outs, batch_norm.collected_values(running)

    outs, running_values = jax.shard_map(
        per_device, mesh=mesh, in_specs=PartitionSpec(DATA_AXIS),
        out_specs=(PartitionSpec(DATA_AXIS), PartitionSpec()), check_vma=False)(*stacks)
    batch_norm.assign(collected[0], running_values)
  outputs = {}
  for group, out in zip(groups, outs):
    outputs.update(zip(group, unstack_views(out, len(group))))
  return [outputs[i] for i in range(len(views))]


def embed_projections(model: SSLModel, views: Sequence[jax.Array], context: StepContext
                      ) -> list[jax.Array]:
  """A spec's `embed` for methods whose loss sees the projector outputs of every view:
  V x [B, D] (one pass per crop size; `context` is not needed)."""
  del context
  return embed_views(model, views)


def embed_views(model: SSLModel, views: Sequence[jax.Array],
                head: str = "projector") -> list[jax.Array]:
  """backbone -> `head` of every view, one pass per crop size: V x [B, H, W, C] -> V x [B, D]."""
  return map_by_crop_size(lambda x: model.heads[head](model.backbone(x)), views)
