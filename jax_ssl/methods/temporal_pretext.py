"""Temporal pretext tasks: classify a clip's frame order, direction or playback speed.

One method with the tasks as options (`method_args.task`: "order", "arrow", "sort", "speed",
or several joined by "+", e.g. "speed+order"); each task is a classifier head on the backbone's
clip features (a linear layer by default), trained by cross-entropy on labels made inside
the step (`losses.temporal_pretext`). One clip per video (views[0], [B, T, S, S, C]):

* **order** (frame-order verification; Misra et al., "Shuffle and Learn", ECCV 2016): with
  probability 1/2 the clip's frames are put in a random order other than the true one
  (`shuffle_permutations`); the head says whether they were shuffled. Shuffle and Learn
  classifies 3-frame tuples with a siamese 2-D network, its negatives a tuple whose middle
  frame is out of place; here the whole clip goes through the video backbone and any
  non-identity permutation is a negative, so the two classes hold the same frames and only
  their order tells them apart. `method_args.negatives="swap"` makes the negatives harder:
  two adjacent frames exchanged at one random place (`swap_permutations`), the least
  disorder a clip can have. A uniform shuffle of a smooth trajectory jumps everywhere and
  is spotted without knowing where the object is going; one swapped pair reads as a single
  step backwards, which only a clip feature that follows the motion's direction and speed
  tells from a bounce off a border. "mixed": each negative a swap or a shuffle, by a fair
  coin (the easy negatives start the learning, the hard ones refine it).
* **arrow** (arrow of time; Wei et al., "Learning and Using the Arrow of Time", CVPR 2018):
  with probability 1/2 the clip plays backwards; the head says which. With "order" too,
  only the unshuffled clips count in the arrow loss (a shuffled clip has no direction).
  Motion that is its own reversal (Moving Fashion-MNIST's bouncing garments move the same
  either way) leaves this task at chance: it needs gravity, causes and effects.
* **sort** (sequence sorting; Lee et al., "Unsupervised Representation Learning by Sorting
  Sequences" (OPN), ICCV 2017; Xu et al., "Self-supervised Spatiotemporal Learning via Video
  Clip Order Prediction" (VCOP), CVPR 2019): the clip's frames are cut into
  `method_args.chunks` equal chunks, put in one of the chunks!/2 orders of `sort_orders`
  (a chunk order and its time reversal are one class, as OPN's: with probability 1/2 the
  reordered clip plays backwards), and the head names the order. Unlike verification, this
  cannot be solved by spotting a jump: the head must tell where along its path the object
  is in each chunk. OPN sorts 4 single frames with a siamese 2-D network and pairwise
  features, VCOP 3 clips with a 3-D network per clip; here the whole reordered clip goes
  through the video backbone once. Not combined with "order" or "arrow" (all three reorder
  the same frames).
* **speed** (SpeedNet, Benaim et al., CVPR 2020: normal vs sped up; Pace Prediction,
  Wang et al., ECCV 2020: one class per pace): the host clip sampler plays each clip at one
  of `config.clips.speeds` (frame step = clips.stride * speed; `StepContext.clip_speeds`);
  the label is the index of the clip's speed in `method_args.speeds`, which must list the
  same speeds (`check_clip_speeds`, called at the entry point where both are known).

The random choices come from `context.rng` (the same on every device, and on a resumed run).
Evaluation features are the backbone's: the heads exist only for the tasks.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl import losses
from jax_ssl.config.typed import check
from jax_ssl.methods import classification
from jax_ssl.methods.spec import Metrics, MethodSpec, SSLModel, StepContext

TASKS = ("order", "arrow", "sort", "speed")
NEGATIVES = ("shuffle", "swap", "mixed")
SEPARATOR = "+"
# Each task's loss and accuracy in the metrics ("speed" alone would read as throughput).
METRIC_NAMES = {"order": "frame_order", "arrow": "arrow_of_time", "sort": "chunk_order",
                "speed": "playback_speed"}


@dataclasses.dataclass(frozen=True)
class Args:
  """`method_args.*`: `task`, one of TASKS or several joined by "+" ("speed+order"); `speeds`:
  the playback speeds of the speed task's classes, in class order, equal to
  `config.clips.speeds` (the sampler's; e.g. (1, 2, 3, 4), the paces of Pace Prediction's
  released code);
  `negatives`: how the order task disorders a clip, one of NEGATIVES: "shuffle" (any
  non-identity order of its frames), "swap" (two adjacent frames exchanged) or "mixed"
  (either, by a fair coin per clip); `chunks`: the sort task's chunk count (>= 3; the clip's
  frame count must be a multiple: `check_clip_frames`)."""

  task: str = "order"
  speeds: tuple[int, ...] = ()
  negatives: str = "shuffle"
  chunks: int = 4

  @property
  def tasks(self) -> tuple[str, ...]:
    return tuple(self.task.split(SEPARATOR))

  def validate(self) -> None:
    tasks = self.tasks
    check(all(t in TASKS for t in tasks) and len(set(tasks)) == len(tasks),
          f"method_args.task={self.task!r}; use one of {TASKS} or several joined by "
          f"'{SEPARATOR}', each once (e.g. 'speed{SEPARATOR}order')")
    check(self.negatives in NEGATIVES,
          f"method_args.negatives={self.negatives!r}; use one of {NEGATIVES}")
    check("sort" not in tasks or not {"order", "arrow"} & set(tasks),
          f"method_args.task={self.task!r}: 'sort' reorders the frames as 'order' and "
          f"'arrow' do; use it alone or with 'speed'")
    check(self.chunks >= 3, f"method_args.chunks={self.chunks}; the sort task needs >= 3 "
          f"chunks (2 chunks have one order up to time reversal)")
    if "speed" in tasks:
      check(len(self.speeds) >= 2 and len(set(self.speeds)) == len(self.speeds)
            and all(s >= 1 for s in self.speeds),
            f"method_args.speeds={tuple(self.speeds)!r} with task 'speed'; list at least two "
            f"distinct playback speeds >= 1, the same as config.clips.speeds (e.g. (1, 2, 3, 4))")


def check_clip_speeds(args: Args, clip_speeds: Sequence[int]) -> None:
  """The entry point's check that the speed task's classes are the sampler's speeds:
  `method_args.speeds` must equal `config.clips.speeds` (a ConfigError line otherwise)."""
  if "speed" in args.tasks:
    check(tuple(args.speeds) == tuple(clip_speeds),
          f"method_args.speeds={tuple(args.speeds)!r} differs from config.clips.speeds="
          f"{tuple(clip_speeds)!r}; the speed task's classes are the sampler's speeds: set "
          f"both to the same tuple")


def check_clip_frames(args: Args, num_frames: int) -> None:
  """The entry point's check that the sort task's chunks split the clip evenly."""
  if "sort" in args.tasks:
    check(num_frames % args.chunks == 0,
          f"method_args.chunks={args.chunks} with config.clips.num_frames={num_frames}: the "
          f"sort task cuts the clip into equal chunks; use a frame count that is a multiple "
          f"of the chunks (e.g. {args.chunks * max(1, round(num_frames / args.chunks))})")


def sort_orders(num_chunks: int) -> np.ndarray:
  """int32 [num_chunks! / 2, num_chunks]: one chunk order of each pair {order, its reversal},
  the one whose first chunk comes before its last (OPN's classes), in lexicographic order;
  row 0 is the identity."""
  rows = [p for p in itertools.permutations(range(num_chunks)) if p[0] < p[-1]]
  return np.asarray(rows, np.int32)


def num_classes(task: str, args: Args) -> int:
  """Classes of a task's head: 2 for order and arrow, one per speed for speed, chunks!/2
  for sort."""
  if task == "sort":
    return len(sort_orders(args.chunks))
  return len(args.speeds) if task == "speed" else 2


@dataclasses.dataclass(frozen=True)
class Heads(classification.ClassifierHeads):
  """`heads.*`: each task's classifier on the backbone features. Default: one linear layer
  (the papers' fc classifiers on the pooled features; the hidden width matters only with
  classifier_num_layers > 1)."""

  classifier_hidden_dim: int = 512
  classifier_num_layers: int = 1


def make_heads(feature_dim: int, heads: Heads, args: Args,
               rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """{"<task>_classifier": features -> the task's logits} for each task."""
  return {f"{task}_classifier": classification.classifier_head(
      feature_dim, num_classes(task, args), heads, rngs)["classifier"] for task in args.tasks}


def shuffle_permutations(rng: jax.Array, batch: int, num_frames: int) -> jax.Array:
  """int32 [B, T]: a random frame order per clip that is never the identity (T >= 2).

  A uniform permutation (the argsort of uniform noise, as MAE's shuffle); where it is the
  identity (probability 1 / T!), the frames rotated by one instead.
  """
  order = jnp.argsort(jax.random.uniform(rng, (batch, num_frames)), axis=1).astype(jnp.int32)
  identity = jnp.arange(num_frames, dtype=jnp.int32)
  is_identity = jnp.all(order == identity, axis=1, keepdims=True)
  return jnp.where(is_identity, jnp.roll(identity, 1), order)


def swap_permutations(rng: jax.Array, batch: int, num_frames: int) -> jax.Array:
  """int32 [B, T]: the identity with two adjacent frames exchanged, at a uniform place per
  clip (T >= 2)."""
  place = jax.random.randint(rng, (batch, 1), 0, num_frames - 1)
  index = jnp.arange(num_frames, dtype=jnp.int32)[None, :]
  return jnp.where(index == place, place + 1,
                   jnp.where(index == place + 1, place, index)).astype(jnp.int32)


def mixed_permutations(rng: jax.Array, batch: int, num_frames: int) -> jax.Array:
  """int32 [B, T]: per clip, by a fair coin, `swap_permutations` or `shuffle_permutations`."""
  coin_rng, swap_rng, shuffle_rng = jax.random.split(rng, 3)
  swap = jax.random.bernoulli(coin_rng, 0.5, (batch, 1))
  return jnp.where(swap, swap_permutations(swap_rng, batch, num_frames),
                   shuffle_permutations(shuffle_rng, batch, num_frames))


PERMUTATIONS = {"shuffle": shuffle_permutations, "swap": swap_permutations,
                "mixed": mixed_permutations}


def frame_orders(rng: jax.Array, batch: int, num_frames: int, tasks: Sequence[str],
                 negatives: str = "shuffle", chunks: int = 4
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Each clip's frame order and the labels it implies, for the order and arrow tasks.

  Returns:
    (int32 [B, T] frame indices: output frame i is input frame order[b, i]; {"order": int32
    [B], 1 = shuffled, "arrow": int32 [B], 1 = reversed}, for the tasks asked). Reversal
    (arrow) comes first, then shuffling (order) of the reversed or forward frames, by a
    permutation of the kind `negatives` names (PERMUTATIONS). "sort": {"sort": int32 [B], the
    row of `sort_orders(chunks)` the clip's chunks were put in, played backwards with
    probability 1/2}.
  """
  reverse_rng, shuffle_rng, pick_rng = jax.random.split(rng, 3)
  identity = jnp.broadcast_to(jnp.arange(num_frames, dtype=jnp.int32), (batch, num_frames))
  order, labels = identity, {}
  if "sort" in tasks:
    if num_frames % chunks:
      raise ValueError(f"the sort task cuts {num_frames} frames into {chunks} equal chunks; "
                       f"use a frame count that is a multiple of method_args.chunks")
    table = jnp.asarray(sort_orders(chunks))
    classes = jax.random.randint(shuffle_rng, (batch,), 0, table.shape[0]).astype(jnp.int32)
    length = num_frames // chunks
    order = (table[classes][:, :, None] * length
             + jnp.arange(length, dtype=jnp.int32)).reshape(batch, num_frames)
    backwards = jax.random.bernoulli(reverse_rng, 0.5, (batch, 1))
    order = jnp.where(backwards, order[:, ::-1], order)
    labels["sort"] = classes
  if "arrow" in tasks:
    reversed_ = jax.random.bernoulli(reverse_rng, 0.5, (batch,))
    order = jnp.where(reversed_[:, None], identity[:, ::-1], order)
    labels["arrow"] = reversed_.astype(jnp.int32)
  if "order" in tasks:
    shuffled = jax.random.bernoulli(pick_rng, 0.5, (batch,))
    permutation = PERMUTATIONS[negatives](shuffle_rng, batch, num_frames)
    order = jnp.where(shuffled[:, None], jnp.take_along_axis(order, permutation, axis=1), order)
    labels["order"] = shuffled.astype(jnp.int32)
  return order, labels


def speed_classes(clip_speeds: jax.Array, speeds: Sequence[int]) -> jax.Array:
  """int32 [B]: the index of each clip's playback speed ([B]) in `speeds`."""
  table = jnp.asarray(speeds, jnp.int32)
  return jnp.argmax(clip_speeds[:, None] == table[None, :], axis=1).astype(jnp.int32)


def objective(model: SSLModel, views: Sequence[jax.Array], method_state: Any,
              context: StepContext, args: Args) -> tuple[jax.Array, Metrics, Any]:
  """Cross-entropy of each task's classifier on views[0], its frames reordered as
  `frame_orders` draws from `context.rng`; logs the total and each task's loss and accuracy
  (`METRIC_NAMES`)."""
  del method_state
  clips = views[0]
  batch, num_frames = clips.shape[:2]
  tasks = args.tasks
  order, labels = frame_orders(context.rng, batch, num_frames, tasks, args.negatives,
                               args.chunks)
  clips = jnp.take_along_axis(clips, order.reshape(batch, num_frames, 1, 1, 1), axis=1)
  weights = {}
  if "arrow" in labels and "order" in labels:
    weights["arrow"] = 1.0 - labels["order"].astype(jnp.float32)  # shuffled: no direction
  if "speed" in tasks:
    if context.clip_speeds is None:
      raise ValueError("method_args.task includes 'speed' but the batch has no clip speeds; "
                       "train on a video dataset (config.clips.speeds)")
    labels["speed"] = speed_classes(context.clip_speeds[:, 0], args.speeds)
  features = model.backbone(clips)
  logits = {task: model.heads[f"{task}_classifier"](features).astype(jnp.float32)
            for task in tasks}
  loss = losses.temporal_pretext([logits[t] for t in tasks], [labels[t] for t in tasks],
                                 [weights.get(t) for t in tasks])
  metrics = {}
  for task in tasks:
    task_loss, accuracy = classification.cross_entropy_and_accuracy(
        logits[task], labels[task], weights.get(task))
    metrics[METRIC_NAMES[task]] = task_loss
    metrics[f"{METRIC_NAMES[task]}_accuracy"] = accuracy
  return loss, {"temporal_pretext": loss, **metrics}, {}


SPEC = MethodSpec(
    name="temporal_pretext",
    num_views=1,
    make_heads=make_heads,
    objective=objective,
    args_type=Args,
    heads_type=Heads,
)
