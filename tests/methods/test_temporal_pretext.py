"""Temporal pretext tasks: the frame orders and labels made on device (a shuffled clip is a
non-identity permutation of its frames, a reversed one runs backwards, the speed class is the
index of the clip's speed), the Args checks, the objective on a stand-in backbone, and the
train step on 1 vs 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import clip_step_states, tiny_clip_config
from jax_ssl import losses
from jax_ssl.errors import ConfigError
from jax_ssl.methods import temporal_pretext as tp
from jax_ssl.methods.spec import SSLModel, StepContext


# Jitted: eager, every small op compiles on its own (seconds on 2 CPU cores).
_shuffle = jax.jit(tp.shuffle_permutations, static_argnums=(1, 2))
_frame_orders = jax.jit(tp.frame_orders, static_argnums=(1, 2, 3, 4, 5))
_swap = jax.jit(tp.swap_permutations, static_argnums=(1, 2))


def test_shuffles_are_permutations_that_are_never_the_identity():
  # With 2 frames half the uniform permutations are the identity: all must be replaced by
  # the swap. With 5 frames: permutations, not the identity, and many different ones.
  two = np.asarray(_shuffle(jax.random.key(0), 256, 2))
  assert (two == [1, 0]).all()
  five = np.asarray(_shuffle(jax.random.key(1), 512, 5))
  assert (np.sort(five, axis=1) == np.arange(5)).all()
  assert not (five == np.arange(5)).all(axis=1).any()
  assert len({tuple(row) for row in five}) > 80  # of the 119 non-identity orders


def test_swaps_exchange_one_adjacent_pair_anywhere_in_the_clip():
  frames = 6
  swaps = np.asarray(_swap(jax.random.key(2), 600, frames))
  moved = swaps != np.arange(frames)
  assert (moved.sum(axis=1) == 2).all()  # exactly two frames out of place
  first = moved.argmax(axis=1)
  rows = np.arange(len(swaps))
  assert moved[rows, first + 1].all()  # ... and they are neighbours
  assert (swaps[rows, first] == first + 1).all() and (swaps[rows, first + 1] == first).all()
  # Every one of the 5 places is used, none much more than the others (120 expected each).
  counts = np.bincount(first, minlength=frames - 1)
  assert counts.shape == (frames - 1,) and counts.min() > 80, counts
  assert (np.asarray(_swap(jax.random.key(0), 8, 2)) == [1, 0]).all()


def test_swap_negatives_in_the_order_task():
  batch, frames = 256, 6
  identity = np.arange(frames)
  order, labels = _frame_orders(jax.random.key(4), batch, frames, ("order",), "swap")
  order, shuffled = np.asarray(order), np.asarray(labels["order"])
  assert 0.4 < shuffled.mean() < 0.6
  assert (order[shuffled == 0] == identity).all()
  assert ((order[shuffled == 1] != identity).sum(axis=1) == 2).all()
  # With the arrow task: a reversed clip with one adjacent pair swapped.
  order, labels = _frame_orders(jax.random.key(4), batch, frames, ("arrow", "order"), "swap")
  order = np.asarray(order)
  start = np.where(np.asarray(labels["arrow"])[:, None] == 1, identity[::-1], identity)
  expected_moved = np.where(np.asarray(labels["order"]) == 1, 2, 0)
  np.testing.assert_array_equal((order != start).sum(axis=1), expected_moved)


def test_mixed_negatives_are_half_swaps_half_shuffles():
  frames = 6
  mixed = np.asarray(jax.jit(tp.mixed_permutations, static_argnums=(1, 2))(
      jax.random.key(7), 1000, frames))
  assert (np.sort(mixed, axis=1) == np.arange(frames)).all()
  assert not (mixed == np.arange(frames)).all(axis=1).any()
  moved = (mixed != np.arange(frames)).sum(axis=1)
  # A swap moves 2 frames; of the uniform shuffles 15 of 719 move 2 (adjacent or not).
  assert 0.45 < (moved == 2).mean() < 0.58
  assert 0.35 < (moved >= 4).mean() < 0.55


def test_sort_orders_are_opn_classes():
  table = tp.sort_orders(4)
  assert table.shape == (12, 4) and table.dtype == np.int32
  assert (table[0] == [0, 1, 2, 3]).all()
  rows = {tuple(r) for r in table}
  assert len(rows) == 12
  # Every permutation of 4 is exactly one row or exactly one row's reversal.
  import itertools  # pylint: disable=g-import-not-at-top
  for p in itertools.permutations(range(4)):
    assert (p in rows) != (p[::-1] in rows)
  assert len(tp.sort_orders(3)) == 3
  assert tp.num_classes("sort", tp.Args(task="sort", chunks=4)) == 12


def test_sort_reorders_chunks_forwards_or_backwards_as_its_label_says():
  batch, frames, chunks = 600, 8, 4
  order, labels = _frame_orders(jax.random.key(6), batch, frames, ("sort",), "shuffle", chunks)
  order, classes = np.asarray(order), np.asarray(labels["sort"])
  table = tp.sort_orders(chunks)
  assert (np.sort(order, axis=1) == np.arange(frames)).all()
  forward = (table[classes][:, :, None] * 2 + np.arange(2)).reshape(batch, frames)
  is_forward = (order == forward).all(axis=1)
  is_backward = (order == forward[:, ::-1]).all(axis=1)
  assert (is_forward | is_backward).all()
  assert 0.4 < is_backward.mean() < 0.6
  # Hand-checked row: class 1 is (0, 1, 3, 2), so frames 0 1 2 3 6 7 4 5 (or backwards).
  assert tuple(table[1]) == (0, 1, 3, 2)
  row = np.flatnonzero(classes == 1)[0]
  assert tuple(order[row]) in {(0, 1, 2, 3, 6, 7, 4, 5), (5, 4, 7, 6, 3, 2, 1, 0)}
  assert np.bincount(classes, minlength=12).min() > 25  # every class drawn (50 expected)
  with pytest.raises(ValueError, match="cuts 6 frames into 4 equal chunks"):
    tp.frame_orders(jax.random.key(0), 2, 6, ("sort",), "shuffle", 4)


def test_frame_orders_and_their_labels():
  batch, frames = 512, 6
  identity = np.arange(frames)
  order, labels = _frame_orders(jax.random.key(3), batch, frames, ("order", "arrow"))
  order, shuffled, reversed_ = (np.asarray(order), np.asarray(labels["order"]),
                                np.asarray(labels["arrow"]))
  assert (np.sort(order, axis=1) == identity).all()  # every clip keeps all its frames
  forward = (order == identity).all(axis=1)
  backward = (order == identity[::-1]).all(axis=1)
  # Unshuffled clips run forwards or backwards as their arrow label says.
  assert (forward == ((shuffled == 0) & (reversed_ == 0))).all()
  assert (backward[shuffled == 0] == (reversed_[shuffled == 0] == 1)).all()
  # Shuffled ones are in neither order (a shuffle of the reversed frames is never the
  # reversal itself).
  assert not (forward | backward)[shuffled == 1].any()
  # Both labels are fair coins, drawn independently.
  for label in (shuffled, reversed_):
    assert 0.4 < label.mean() < 0.6
  assert 0.15 < (shuffled & reversed_).mean() < 0.35
  # One task alone: its label only, the frames otherwise untouched.
  order, labels = _frame_orders(jax.random.key(3), batch, frames, ("arrow",))
  assert set(labels) == {"arrow"}
  expected = np.where(np.asarray(labels["arrow"])[:, None] == 1, identity[::-1], identity)
  np.testing.assert_array_equal(order, expected)


def test_speed_classes_index_the_configured_speeds():
  speeds = jnp.asarray([4, 1, 8, 2, 1], jnp.int32)
  np.testing.assert_array_equal(tp.speed_classes(speeds, (1, 2, 4, 8)), [2, 0, 3, 1, 0])


def test_args_refuse_bad_tasks_and_speeds():
  tp.Args(task="speed+order", speeds=(1, 2)).validate()
  tp.Args(task="order", negatives="swap").validate()
  with pytest.raises(ConfigError, match="method_args.negatives='adjacent'; use one of"):
    tp.Args(task="order", negatives="adjacent").validate()
  tp.Args(task="order", negatives="mixed").validate()
  tp.Args(task="sort+speed", speeds=(1, 2), chunks=3).validate()
  for bad, match in ((dict(task="sort+order"), "'sort' reorders the frames"),
                     (dict(task="sort", chunks=2), "needs >= 3 chunks")):
    with pytest.raises(ConfigError, match=match):
      tp.Args(**bad).validate()
  tp.check_clip_frames(tp.Args(task="sort", chunks=4), 8)
  tp.check_clip_frames(tp.Args(task="order", chunks=4), 6)  # no sort task: any frame count
  with pytest.raises(ConfigError, match="clips.num_frames=6: the sort task cuts"):
    tp.check_clip_frames(tp.Args(task="sort", chunks=4), 6)
  for bad in ("shuffle", "order+order", "order,arrow"):
    with pytest.raises(ConfigError, match="method_args.task="):
      tp.Args(task=bad).validate()
  for speeds in ((), (2,), (1, 1), (0, 1)):
    with pytest.raises(ConfigError, match="method_args.speeds="):
      tp.Args(task="speed", speeds=speeds).validate()
  tp.check_clip_speeds(tp.Args(task="speed", speeds=(1, 2)), (1, 2))
  tp.check_clip_speeds(tp.Args(task="order"), (1,))  # no speed task: nothing to agree on
  with pytest.raises(ConfigError, match=r"differs from config.clips.speeds=\(1, 4\)"):
    tp.check_clip_speeds(tp.Args(task="speed", speeds=(1, 2)), (1, 4))


class _FirstFrameMinusLast(nnx.Module):
  """A stand-in backbone whose features tell the order of frames apart: [B, T, H, W, C] ->
  [B, 2] (mean of the last frame minus the first, and a constant)."""

  feature_dim = 2

  def __call__(self, clips):
    difference = jnp.mean(clips[:, -1] - clips[:, 0], axis=(1, 2, 3))
    return jnp.stack([difference, jnp.ones_like(difference)], axis=1)


def test_objective_scores_the_labels_it_made():
  # Clips whose brightness rises with time: frame t is t. The arrow head is given weights
  # that read "reversed" from a negative last-minus-first difference; its loss must be
  # near 0 if the objective reversed the clips whose label says so, and large otherwise.
  # The speed head gets the clips' speeds as labels through context.clip_speeds.
  args = tp.Args(task="arrow+speed", speeds=(1, 2, 4))
  model = SSLModel(_FirstFrameMinusLast(), tp.make_heads(2, tp.Heads(), args, nnx.Rngs(0)))
  assert set(model.heads) == {"arrow_classifier", "speed_classifier"}
  (linear,) = [m for _, m in nnx.iter_graph(model.heads["arrow_classifier"])
               if isinstance(m, nnx.Linear)]  # a linear classifier by default
  assert linear.kernel.shape == (2, 2)
  # logit 1 - logit 0 = -100 d: "reversed" for a negative last-minus-first difference d.
  linear.kernel[...] = jnp.asarray([[50.0, -50.0], [0.0, 0.0]])
  linear.bias[...] = jnp.zeros(2)
  batch, frames = 64, 4
  clips = jnp.broadcast_to(jnp.arange(frames, dtype=jnp.float32)[None, :, None, None, None],
                           (batch, frames, 2, 2, 1))
  clip_speeds = jnp.asarray(np.random.default_rng(0).choice([1, 2, 4], (batch, 1)), jnp.int32)
  context = StepContext(rng=jax.random.key(5), step=jnp.zeros((), jnp.int32),
                        clip_speeds=clip_speeds)
  graphdef, state = nnx.split(model)
  loss, metrics, _ = jax.jit(lambda state, clips, context: tp.objective(
      nnx.merge(graphdef, state), [clips], {}, context, args))(state, clips, context)
  assert float(metrics["arrow_of_time"]) < 1e-6
  assert float(metrics["arrow_of_time_accuracy"]) == 1.0
  # The speed head's loss: the cross-entropy of its logits on the reordered clips' features
  # against the index of each clip's speed, computed here again.

  @jax.jit
  def expected_speed_loss(state):
    order, _ = tp.frame_orders(jax.random.key(5), batch, frames, ("arrow", "speed"))
    reordered = jnp.take_along_axis(clips, order.reshape(batch, frames, 1, 1, 1), axis=1)
    speed_logits = nnx.merge(graphdef, state).heads["speed_classifier"](
        _FirstFrameMinusLast()(reordered))
    return losses.pretext_cross_entropy(speed_logits,
                                        tp.speed_classes(clip_speeds[:, 0], (1, 2, 4)))

  expected = expected_speed_loss(state)
  assert float(metrics["playback_speed"]) == pytest.approx(float(expected), rel=1e-5)
  assert float(loss) == pytest.approx(float(metrics["arrow_of_time"] + expected), rel=1e-5)
  # Without clip speeds (an image dataset) the speed task says what it needs.
  with pytest.raises(ValueError, match="no clip speeds"):
    tp.objective(model, [clips], {}, context._replace(clip_speeds=None), args)


class _FrameMeans(nnx.Module):
  """A stand-in backbone: [B, T, H, W, C] -> [B, T], each frame's mean (so order shows)."""

  feature_dim = 8

  def __call__(self, clips):
    return jnp.mean(clips, axis=(2, 3, 4))


def test_sort_objective_is_the_cross_entropy_of_the_chunk_order():
  # Frame t of every clip has brightness t, and the stand-in's features are the frames'
  # brightness, i.e. the frame order: the sort head's loss must be the cross-entropy of its
  # logits on the reordered clips against the classes frame_orders drew, computed here
  # again.
  args = tp.Args(task="sort", chunks=4)
  model = SSLModel(_FrameMeans(), tp.make_heads(8, tp.Heads(), args, nnx.Rngs(0)))
  (linear,) = [m for _, m in nnx.iter_graph(model.heads["sort_classifier"])
               if isinstance(m, nnx.Linear)]
  assert linear.kernel.shape == (8, 12)
  batch, frames = 96, 8
  clips = jnp.broadcast_to(jnp.arange(frames, dtype=jnp.float32)[None, :, None, None, None],
                           (batch, frames, 2, 2, 1))
  context = StepContext(rng=jax.random.key(9), step=jnp.zeros((), jnp.int32))
  graphdef, state = nnx.split(model)
  run = jax.jit(lambda state: tp.objective(nnx.merge(graphdef, state), [clips], {}, context,
                                           args))
  loss, metrics, _ = run(state)
  order, labels = tp.frame_orders(jax.random.key(9), batch, frames, ("sort",), "shuffle", 4)
  logits = model.heads["sort_classifier"](jnp.asarray(order, jnp.float32))
  expected = losses.pretext_cross_entropy(logits, labels["sort"])
  assert float(loss) == pytest.approx(float(expected), rel=1e-5)
  assert float(metrics["chunk_order"]) == pytest.approx(float(expected), rel=1e-5)
  # The labels the objective scored name the order its clips were put in: recovered here
  # from the reordered frames alone (a frame order or its reversal is one class).
  table = tp.sort_orders(4)
  forward = (table[:, :, None] * 2 + np.arange(2)).reshape(12, frames)
  made = np.asarray(order)
  recovered = [int(np.flatnonzero((forward == row).all(1) | (forward[:, ::-1] == row).all(1))[0])
               for row in made]
  np.testing.assert_array_equal(recovered, np.asarray(labels["sort"]))
  accuracy = np.mean(np.argmax(np.asarray(logits), axis=1) == np.asarray(labels["sort"]))
  assert float(metrics["chunk_order_accuracy"]) == pytest.approx(accuracy)


def test_step_is_the_same_on_1_and_8_devices():
  # Labels from the step's rng (order) and from the host's clip speeds (speed): equal losses
  # on 1 and 8 devices mean neither depends on how the batch is split.
  # A 1-block video ViT, one token per frame quarter (tubelets of 1 frame): its step compiles
  # in under half the time of the video CNN's (seconds on CPU, twice here; the CNN's
  # global-batch BatchNorm: tests/models/test_video.py, tests/test_video_train.py).
  config = tiny_clip_config("temporal_pretext", {"task": "speed+order", "speeds": (1, 2)},
                            {"classifier_num_layers": 1},
                            **{"clips.speeds": (1, 2), "model.backbone": "vit_tiny",
                               "model.depth": 1, "model.dim": 16, "model.num_heads": 2,
                               "model.patch_size": 8, "model.tubelet_size": 1})
  speeds = np.random.default_rng(1).choice([1, 2], (16, 1)).astype(np.int32)
  one, _ = clip_step_states(config, 1, speeds=speeds)
  eight, _ = clip_step_states(config, 8, speeds=speeds)
  for a, b in zip(one, eight):
    for key in ("loss", "frame_order", "playback_speed", "playback_speed_accuracy"):
      assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)
    assert a["temporal_pretext"] == pytest.approx(a["frame_order"] + a["playback_speed"],
                                                  rel=1e-5)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)  # the steps did something
