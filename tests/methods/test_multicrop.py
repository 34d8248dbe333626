"""Multi-crop views, DINO and SwAV in the shared step: local crops, per-view overrides, the
DINO center and teacher temperature, frozen prototype layers, SwAV's queue, 1 vs 8 devices
and exact resume."""

import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

import trainer_subprocess as ts
from conftest import batch_images, state_and_step, step_losses, tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import losses
from jax_ssl.data import augment
from jax_ssl.errors import ConfigError
from jax_ssl.methods import dino, swav
from jax_ssl.methods.spec import StepContext
from jax_ssl.models.heads import Prototypes

HEADS = {"dino": dict(projector_hidden_dim=16, bottleneck_dim=8, num_prototypes=12,
                      projector_num_layers=3, use_bn=True),
         "swav": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2,
                      num_prototypes=12),
         "simclr": dict(projector_hidden_dim=16, projector_output_dim=8, projector_num_layers=2)}
ARGS = {"dino": dict(student_temp=0.1, teacher_temp=0.07, warmup_teacher_temp=0.04,
                     warmup_teacher_temp_steps=4, center_momentum=0.9,
                     freeze_last_layer_steps=1, base_momentum=0.9),
        "swav": dict(temperature=0.1, epsilon=0.05, sinkhorn_iterations=3, queue_size=96,
                     queue_start_step=2, freeze_prototypes_steps=1),
        "simclr": dict(temperature=0.2)}


def multicrop_config(method, num_local=2, **overrides):
  config = tiny_config("unused", "unused", **overrides)
  config.method = method
  config.method_args = ml_collections.ConfigDict(ARGS[method])
  config.heads = ml_collections.ConfigDict(HEADS[method])
  config.augment.local_crops.update(num=num_local, output_size=12)
  return config


def _views(config, images, rng):
  return augment.make_views(jax.random.fold_in(jax.random.wrap_key_data(rng), 0),
                            images["image"], config_lib.view_configs(typed(config)))


def test_view_configs_global_overrides_then_local_crops():
  config = multicrop_config("dino", num_local=3)
  config.augment.view_overrides = ({"blur_prob": 1.0}, {"solarize_prob": 0.2})
  config.augment.local_crops.overrides = {"blur_prob": 0.5}
  views = config_lib.view_configs(typed(config))
  assert [v.output_size for v in views] == [28, 28, 12, 12, 12]
  assert [v.blur_prob for v in views] == [1.0, 0.0, 0.5, 0.5, 0.5]
  assert [v.solarize_prob for v in views] == [0.0, 0.2, 0.0, 0.0, 0.0]
  assert views[2].crop_scale == (0.05, 0.4) and views[0].crop_scale == (0.2, 1.0)
  images = batch_images(config)
  shapes = [v.shape for v in _views(config, images, jax.random.key_data(jax.random.key(0)))]
  assert shapes == [(32, 28, 28, 1)] * 2 + [(32, 12, 12, 1)] * 3


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "method", "barlow_twins"),
     r"does not use multi-crop local views; set it to 0 \(byol, dino, ibot, moco_v3, simclr and swav "
     r"use them\)"),
    (lambda c: c.augment.update(view_overrides=({"blur_prb": 1.0},)), "did you mean 'blur_prob'"),
    (lambda c: c.augment.update(view_overrides=({}, {}, {})), "at most 2"),
    (lambda c: c.augment.local_crops.update(crop_scale=(0.5, 0.1)), "augment.local_crops"),
])
def test_bad_multicrop_config_is_one_clear_error(change, message):
  config = multicrop_config("dino")
  change(config)
  if config.method == "barlow_twins":
    config.heads = ml_collections.ConfigDict(dict(projector_hidden_dim=16, projector_output_dim=8,
                                                  projector_num_layers=2))
    config.method_args = ml_collections.ConfigDict({"off_diagonal_weight": 5e-3})
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(typed(config), 1)


def test_prototypes_have_unit_columns_and_no_gradient_when_frozen():
  layer = Prototypes(4, 3, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(np.linalg.norm(layer.normalized_kernel(), axis=0), 1.0, rtol=1e-6)
  x = jax.random.normal(jax.random.key(1), (5, 4))
  graphdef, params = nnx.split(layer)

  def grad(frozen):
    return jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x, frozen) ** 2))(params)

  assert float(jnp.abs(grad(False)["kernel"][...]).max()) > 1e-3
  assert float(jnp.abs(grad(True)["kernel"][...]).max()) == 0.0
  # Scaling V changes nothing: only directions count.
  scaled = jax.tree.map(lambda v: 7.0 * v, params)
  np.testing.assert_allclose(nnx.merge(graphdef, scaled)(x), layer(x), rtol=1e-5)


def test_teacher_temperature_warms_up_linearly():
  temps = [float(dino.teacher_temperature(jnp.asarray(s), 0.04, 0.07, 3)) for s in range(5)]
  np.testing.assert_allclose(temps, [0.04, 0.05, 0.06, 0.07, 0.07], rtol=1e-6)
  assert float(dino.teacher_temperature(jnp.asarray(9), 0.04, 0.07, 0)) == pytest.approx(0.07)


def test_dino_center_moves_by_the_mean_teacher_output_of_the_global_batch():
  config = multicrop_config("dino")
  _, graphdef, _, state, step = state_and_step(config)
  rng = jax.random.key_data(jax.random.key(0))
  images = batch_images(config)
  new_state, metrics = step(state, images, rng)
  assert float(metrics["teacher_temp"]) == pytest.approx(0.04)
  # By hand: the teacher (the initial target = the online model) on the 2 global views.
  views = _views(config, images, rng)
  teacher = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  teacher.train()
  logits = teacher.heads["projector"](teacher.backbone(jnp.concatenate(views[:2])))
  expected = 0.1 * np.asarray(jnp.mean(logits, axis=0))  # 0.9 * zeros + 0.1 * mean
  np.testing.assert_allclose(new_state.method_state["center"], expected, rtol=1e-4, atol=1e-6)
  assert np.abs(expected).max() > 1e-3


@pytest.mark.parametrize("method, path", [("dino", ("projector", "last_layer", "kernel")),
                                          ("swav", ("prototypes", "kernel"))])
def test_prototype_layer_is_frozen_for_the_first_steps(method, path):
  config = multicrop_config(method)
  _, _, _, state, step = state_and_step(config)
  rng = jax.random.key_data(jax.random.key(0))

  def direction(state):
    kernel = state.params["heads"]
    for key in path:
      kernel = kernel[key]
    kernel = np.asarray(kernel[...])
    return kernel / np.linalg.norm(kernel, axis=0)

  first, _ = step(state, batch_images(config, 0), rng)  # step 0: frozen
  np.testing.assert_allclose(direction(first), direction(state), rtol=1e-5, atol=1e-6)
  second, _ = step(first, batch_images(config, 1), rng)  # step 1: trained
  assert np.abs(direction(second) - direction(first)).max() > 1e-4


def test_swav_queue_takes_the_global_views_and_is_used_from_its_start_step():
  config = multicrop_config("swav")
  _, graphdef, _, state, step = state_and_step(config)
  rng = jax.random.key_data(jax.random.key(0))
  images = batch_images(config)
  new_state, _ = step(state, images, rng)
  views = _views(config, images, rng)
  model = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  model.train()
  z = swav.normalized_projections(model, views)
  for v in range(2):
    queue = new_state.method_state[f"view{v}"]
    assert int(queue["pointer"]) == 32 and int(queue["filled"]) == 32
    np.testing.assert_allclose(queue["embeddings"][:32], z[v], rtol=1e-4, atol=1e-5)
  # The loss ignores the queue before queue_start_step and uses it from then on (on other
  # images: a queue that repeats the batch's own rows leaves Sinkhorn's codes as they were).
  views = _views(config, batch_images(config, 1), rng)
  context = StepContext(rng=jax.random.key(0), step=jnp.asarray(0), target=None)
  args = swav.Args(**ARGS["swav"])
  shuffled = jax.tree.map(lambda x: x.at[:32].set(x[:32][::-1]) if x.ndim == 2 else x,
                          new_state.method_state)
  model = nnx.merge(graphdef, new_state.params, new_state.batch_stats, copy=True)
  model.train()
  before = [float(swav.objective(model, views, s, context, args)[0])
            for s in (new_state.method_state, shuffled)]
  assert before[0] == before[1]
  later = context._replace(step=jnp.asarray(2))
  after = [float(swav.objective(model, views, s, later, args)[0])
           for s in (new_state.method_state, shuffled)]
  assert after[0] != pytest.approx(before[0], rel=1e-6)
  assert after[0] == pytest.approx(after[1], rel=1e-5)  # the queue's order does not matter


def _swav_queue_state(embeddings, filled):
  return {f"view{v}": {"embeddings": jnp.asarray(embeddings[v]),
                       "pointer": jnp.asarray(filled % 96, jnp.int32),
                       "filled": jnp.asarray(filled, jnp.int32)} for v in range(2)}


def test_swav_sinkhorn_sees_only_the_filled_queue_rows():
  """A queue with k real rows gives exactly the codes of Sinkhorn on the batch plus those k
  rows: the other rows (zeros at the start, anything at all) add nothing to the marginals."""
  config = multicrop_config("swav")  # queue_size 96, global batch 32
  _, graphdef, _, state, _ = state_and_step(config)
  views = _views(config, batch_images(config), jax.random.key_data(jax.random.key(0)))
  model = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  model.train()
  args = swav.Args(**ARGS["swav"])
  prototypes = model.heads["prototypes"]
  scores = jnp.stack([prototypes(z) for z in swav.normalized_projections(model, views)])
  rng = np.random.default_rng(0)
  embeddings = np.asarray(losses.l2_normalize(rng.normal(size=(2, 96, 8)).astype(np.float32)))
  context = StepContext(rng=jax.random.key(0), step=jnp.asarray(5), target=None)

  def expected_loss(rows):
    codes = [losses.sinkhorn_knopp(jnp.concatenate([scores[v], embeddings[v][:rows] @
                                                    prototypes.normalized_kernel()]),
                                   0.05, 3)[:32] for v in range(2)]
    return float(losses.swav(scores, jnp.stack(codes), 0.1))

  def loss(queue_state):
    return float(swav.objective(model, views, queue_state, context, args)[0])

  filled = 40
  assert loss(_swav_queue_state(embeddings, filled)) == pytest.approx(expected_loss(filled),
                                                                      rel=1e-6)
  # Whatever the unfilled rows hold, the loss is the same; all 96 rows would differ.
  garbage = embeddings.copy()
  garbage[:, filled:] = -garbage[:, filled:]
  assert loss(_swav_queue_state(garbage, filled)) == loss(_swav_queue_state(embeddings, filled))
  assert expected_loss(96) != pytest.approx(expected_loss(filled), rel=1e-4)
  # An empty queue is the batch alone, even past queue_start_step.
  assert loss(_swav_queue_state(embeddings, 0)) == pytest.approx(expected_loss(0), rel=1e-6)
  # A full queue: all of it.
  assert loss(_swav_queue_state(embeddings, 96)) == pytest.approx(expected_loss(96), rel=1e-6)


def test_swav_queue_starts_empty_and_counts_its_rows():
  args = swav.Args(**{**ARGS["swav"], "queue_size": 96})
  state = swav.init_method_state(args, swav.Heads(**HEADS["swav"]))
  assert np.all(np.asarray(state["view0"]["embeddings"]) == 0.0)
  fills, pointers = [], []
  for k in range(4):  # 32 rows per step into 96: 32, 64, 96, then full (the pointer laps)
    z = jax.random.normal(jax.random.key(k), (32, 2, 8))
    state = swav.update_method_state(state, {"z": z}, None, args)
    fills.append(int(state["view1"]["filled"]))
    pointers.append(int(state["view1"]["pointer"]))
  assert fills == [32, 64, 96, 96] and pointers == [32, 64, 0, 32]
  np.testing.assert_allclose(state["view1"]["embeddings"][:32], losses.l2_normalize(z[:, 1]),
                             rtol=1e-6)


@pytest.mark.parametrize("method", ["dino", "swav", "simclr"])
def test_multicrop_step_is_the_same_on_1_and_8_devices(method):
  config = multicrop_config(method)
  one, eight = step_losses(config, 1, steps=4), step_losses(config, 8, steps=4)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)


def _step_and_views(config):
  """One step of `config` on seeded images: (graphdef, state before it, its metrics, the
  views it made: 2 global of 28 px then 2 local of 12 px)."""
  _, graphdef, _, state, step = state_and_step(config)
  images = batch_images(config)
  rng = jax.random.key_data(jax.random.key(0))
  _, metrics = step(state, images, rng)
  views = _views(config, images, rng)
  assert [v.shape[1] for v in views] == [28, 28, 12, 12]
  return graphdef, state, metrics, views


def test_simclr_with_local_crops_contrasts_every_crop():
  # 2 global + 2 local views: the step's loss is nt_xent_multi_view over all 4 embeddings.
  config = multicrop_config("simclr")
  graphdef, state, metrics, views = _step_and_views(config)
  model = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  model.train()
  z = []  # one encoder pass per crop size, as the step's BatchNorm sees the views
  for pair in (views[:2], views[2:]):
    z += jnp.split(model.heads["projector"](model.backbone(jnp.concatenate(pair))), 2)
  expected = losses.nt_xent_multi_view(z, 0.2)
  assert float(metrics["nt_xent"]) == pytest.approx(float(expected), rel=1e-4)
  assert float(metrics["nt_xent"]) != pytest.approx(float(losses.nt_xent(*z[:2], 0.2)), rel=1e-3)


def test_dino_with_local_crops_in_a_mix_and_under_gradient_accumulation():
  config = multicrop_config("dino", grad_accum_steps=2)
  _, _, _, state, step = state_and_step(config)
  state, metrics = step(state, batch_images(config), jax.random.key_data(jax.random.key(0)))
  assert np.isfinite(float(metrics["loss"])) and np.abs(state.method_state["center"]).max() > 0
  mixed = multicrop_config("dino")
  mixed.method = "rotation+dino"
  mixed.method_args = ml_collections.ConfigDict(
      {"dino": {**ARGS["dino"], "weight": 1.0}, "rotation": {"weight": 0.5}})
  mixed.heads = ml_collections.ConfigDict(
      {"dino": HEADS["dino"], "rotation": dict(classifier_hidden_dim=8, classifier_num_layers=2)})
  config_lib.validate(typed(mixed), 1)
  assert len(config_lib.view_configs(typed(mixed))) == 4
  _, _, _, state, step = state_and_step(mixed)
  _, metrics = step(state, batch_images(mixed), jax.random.key_data(jax.random.key(0)))
  assert np.isfinite(float(metrics["dino/loss"])) and np.isfinite(float(metrics["rotation/loss"]))


def test_sigkill_and_rerun_resumes_swav_exactly(fake_fmnist, tmp_path):
  # 32 rows a step into 320: used part-filled from step 3, 256 rows by step 8.
  flags = {"experiment": "fashion_mnist/swav.py", "total_steps": 8, "checkpoint_every_steps": 4,
           "method_args.queue_size": 320, "method_args.queue_start_step": 3}
  reference, resumed = tmp_path / "reference", tmp_path / "resumed"
  ts.run(ts.trainer_args(reference, *fake_fmnist, **flags))
  args = ts.trainer_args(resumed, *fake_fmnist, **flags)
  killed = ts.run(args, harness_flags=["--kill_at_step=6", "--kill_signal=KILL"], check=False)
  assert killed.returncode == -signal.SIGKILL
  ts.run(args)
  for run in (resumed, reference):  # the fill count is saved and restored with the queue
    assert int(ts.final_params(run, "method_state")[1]["/view0/filled"]) == 256
  for field in ("params", "method_state"):
    step_a, state_a = ts.final_params(resumed, field)
    step_b, state_b = ts.final_params(reference, field)
    assert step_a == step_b == 8 and state_a.keys() == state_b.keys() and state_a
    for key in state_b:
      np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=f"{field}{key}")


@pytest.mark.parametrize("method", ["dino", "moco_v3"])
def test_dino_with_local_crops_and_moco_v3_run_on_a_vit_by_config(method):
  """The teacher-student methods take a ViT by config; DINO's 12 px local crops get 3x3
  tokens with interpolated position embeddings."""
  if method == "dino":
    config = multicrop_config("dino")
  else:
    from conftest import teacher_config  # pylint: disable=g-import-not-at-top
    config = teacher_config("moco_v3")
  config.model.update(dict(backbone="vit_tiny", patch_size=4, depth=1, dim=16, num_heads=2))
  config_lib.validate(typed(config), 1)
  _, _, _, state, step = state_and_step(config)
  rng = jax.random.key_data(jax.random.key(0))
  first, metrics = step(state, batch_images(config, 0), rng)
  second, later = step(first, batch_images(config, 1), rng)
  assert np.isfinite(float(metrics["loss"])) and float(later["loss"]) != float(metrics["loss"])
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       state.params["backbone"], second.params["backbone"])
  assert max(jax.tree.leaves(moved)) > 0
  if method == "dino":
    bad = multicrop_config("dino")
    bad.model.update(dict(backbone="vit_tiny", patch_size=4, depth=1, dim=16, num_heads=2))
    bad.augment.local_crops.output_size = 10
    with pytest.raises(ConfigError, match="local_crops.output_size=10 does not split into "
                                          "model.patch_size=4"):
      config_lib.validate(typed(bad), 1)


@pytest.mark.parametrize("method", ["byol", "moco_v3"])
def test_byol_and_moco_v3_local_crops_predict_the_global_targets(method):
  # solo-learn's multi-crop BYOL / MoCo v3: every crop's prediction against each *other*
  # global view's target; the target network sees the 2 global views only.
  from conftest import teacher_config  # pylint: disable=g-import-not-at-top
  config = teacher_config(method)
  config.augment.local_crops.update(num=2, output_size=12)
  graphdef, state, metrics, views = _step_and_views(config)
  model = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
  from jax_ssl.methods.spec import with_modules  # pylint: disable=g-import-not-at-top
  target = nnx.merge(graphdef, with_modules(state.params, state.target_params),
                     with_modules(state.batch_stats, state.target_batch_stats), copy=True)
  model.train()
  target.train()
  p = []  # one online pass per crop size, as the step's BatchNorm sees the views
  for pair in (views[:2], views[2:]):
    p += jnp.split(model.heads["predictor"](model.heads["projector"](
        model.backbone(jnp.concatenate(pair)))), 2)
  z = jnp.split(target.heads["projector"](target.backbone(jnp.concatenate(views[:2]))), 2)
  pairs = [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)]
  if method == "byol":
    expected = sum(losses.byol(p[v2], z[v1]) for v1, v2 in pairs)
    value, two_view = float(metrics["byol"]), losses.byol(p[0], z[1]) + losses.byol(p[1], z[0])
  else:
    expected = sum(losses.info_nce(p[v2], z[v1], 0.2) for v1, v2 in pairs)
    value = float(metrics["info_nce"])
    two_view = losses.info_nce(p[0], z[1], 0.2) + losses.info_nce(p[1], z[0], 0.2)
  assert value == pytest.approx(float(expected), rel=1e-4)
  assert value != pytest.approx(float(two_view), rel=1e-2)
