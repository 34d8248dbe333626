"""EMA targets (BYOL, MoCo v3) and gradient accumulation in the shared step: the target
moves once per optimizer step by the cosine-scheduled momentum, gets no gradient, is the
same on 1 and 8 devices and resumes exactly; accumulated gradients are the mean of the
micro-batches' gradients."""

import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import trainer_subprocess as ts
from conftest import (batch_images, state_and_step, step_losses, teacher_config, tiny_config,
                      typed)
from jax_ssl import config as config_lib
from jax_ssl import optim
from jax_ssl.data import augment
from jax_ssl.methods.spec import StepContext, select_modules
from jax_ssl.step import _micro_batches



_setup = state_and_step  # (spec, graphdef, optimizer, state, jitted step)


_images = batch_images  # {"image": uint8 [global_batch_size, 28, 28, 1]}


def test_cosine_momentum_schedule():
  assert float(optim.cosine_momentum(0.99, 0, 100)) == pytest.approx(0.99)
  assert float(optim.cosine_momentum(0.99, 50, 100)) == pytest.approx(0.995)
  assert float(optim.cosine_momentum(0.99, 100, 100)) == pytest.approx(1.0)
  assert float(optim.cosine_momentum(0.99, 25, 100)) == pytest.approx(
      1 - 0.01 * (np.cos(np.pi / 4) + 1) / 2)


@pytest.mark.parametrize("grad_accum_steps", [1, 2])
@pytest.mark.parametrize("method", ["byol", "moco_v3"])
def test_target_moves_once_per_step_by_the_scheduled_momentum(method, grad_accum_steps):
  config = teacher_config(method, total_steps=10, grad_accum_steps=grad_accum_steps)
  spec, _, _, state, step = _setup(config)
  assert spec.target_modules == ("backbone", "heads/projector")
  # The target starts as a copy of the online backbone and projector, without the predictor.
  assert set(state.target_params.keys()) == {"backbone", "heads"}
  assert set(state.target_params["heads"].keys()) == {"projector"}
  for a, b in zip(jax.tree.leaves(state.target_params),
                  jax.tree.leaves(select_modules(state.params, spec.target_modules))):
    np.testing.assert_array_equal(a, b)
  for k in range(3):
    old_target = state.target_params
    state, metrics = step(state, _images(config, k), jax.random.key_data(jax.random.key(0)))
    momentum = float(optim.cosine_momentum(0.9, k, 10))
    assert float(metrics["target_momentum"]) == pytest.approx(momentum)
    online = select_modules(state.params, spec.target_modules)
    for new, old, now in zip(jax.tree.leaves(state.target_params), jax.tree.leaves(old_target),
                             jax.tree.leaves(online)):
      np.testing.assert_allclose(new, momentum * np.asarray(old) + (1 - momentum) * np.asarray(now),
                                 rtol=1e-5, atol=1e-7)
  assert int(state.step) == 3
  # The target lags: it differs from the online weights after a few updates.
  assert not np.allclose(jax.tree.leaves(state.target_params)[-1],
                         jax.tree.leaves(select_modules(state.params, spec.target_modules))[-1])


def test_no_gradient_reaches_the_target():
  config = teacher_config("byol")
  spec, graphdef, _, state, _ = _setup(config)
  views = list(jax.random.uniform(jax.random.key(0), (2, 32, 28, 28, 1)))

  def loss_of_target(target_params):
    state_with = state.replace(target_params=target_params)
    from jax_ssl.methods.spec import with_modules  # pylint: disable=g-import-not-at-top
    model = nnx.merge(graphdef, state.params, state.batch_stats, copy=True)
    target = nnx.merge(graphdef, with_modules(state.params, jax.lax.stop_gradient(
        state_with.target_params)), state.batch_stats, copy=True)
    model.train()
    target.train()
    context = StepContext(rng=jax.random.key(1), step=jnp.zeros((), jnp.int32), target=target)
    return spec.objective(model, views, {}, context, spec.args_type(base_momentum=0.9))[0]

  grads = jax.grad(loss_of_target)(state.target_params)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))


def test_accumulated_gradient_is_the_mean_of_micro_batch_gradients():
  config = tiny_config("unused", "unused", grad_accum_steps=2)
  config.optimizer.name = "sgd"
  config.optimizer.warmup_steps = 0
  config = typed(config)
  spec, graphdef, optimizer, state, step = _setup(config)
  rng = jax.random.key_data(jax.random.key(0))
  images = _images(config)
  new_state, _ = step(state, images, rng)

  # By hand: the same views, split into the interleaved micro-batches, one gradient each.
  step_rng = jax.random.fold_in(jax.random.wrap_key_data(rng), 0)
  views = augment.make_views(step_rng, images["image"], config_lib.view_configs(config))
  method_args = config.method_args

  def loss(params, micro_views):
    model = nnx.merge(graphdef, params, state.batch_stats, copy=True)
    model.train()
    context = StepContext(rng=jax.random.key(0), step=jnp.zeros((), jnp.int32))
    return spec.objective(model, micro_views, {}, context, method_args)[0]

  micro = [_micro_batches(v, 2) for v in views]
  grads = [jax.grad(loss)(state.params, [m[a] for m in micro]) for a in range(2)]
  mean_grad = jax.tree.map(lambda a, b: (a + b) / 2, *grads)
  full_grad = jax.grad(loss)(state.params, views)  # one batch of 32: other negatives
  updates, _ = optimizer.update(mean_grad, state.opt_state, state.params)
  expected = optax.apply_updates(state.params, updates)
  for got, want in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  differs = [not np.allclose(a, b, rtol=1e-3) for a, b in
             zip(jax.tree.leaves(mean_grad), jax.tree.leaves(full_grad))]
  assert any(differs)  # SimCLR's negatives are per micro-batch, so accumulation is not a no-op


@pytest.mark.parametrize("method", ["byol", "moco_v3"])
def test_teacher_step_is_the_same_on_1_and_8_devices(method):
  config = teacher_config(method)
  one, eight = step_losses(config, 1), step_losses(config, 8)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)


def test_sigkill_and_rerun_resumes_exactly_with_target_and_queue(fake_fmnist, tmp_path):
  # MoCo v2 holds both kinds of extra state (an EMA target and a queue); BYOL's target is
  # the same mechanism, so one method covers them (each case is three trainer processes).
  flags = dict(experiment="fashion_mnist/moco_v2.py", total_steps=8, checkpoint_every_steps=4,
               **{"method_args.queue_size": 48})
  reference, resumed = tmp_path / "reference", tmp_path / "resumed"
  ts.run(ts.trainer_args(reference, *fake_fmnist, **flags))
  args = ts.trainer_args(resumed, *fake_fmnist, **flags)
  killed = ts.run(args, harness_flags=["--kill_at_step=6", "--kill_signal=KILL"], check=False)
  assert killed.returncode == -signal.SIGKILL
  ts.run(args)
  saved_queues = ts.final_params(resumed, "method_state")[1]
  assert {"/view0/embeddings", "/view1/embeddings"} <= saved_queues.keys()  # one per view
  fields = ("params", "target_params", "method_state")
  for field in fields:
    step_a, state_a = ts.final_params(resumed, field)
    step_b, state_b = ts.final_params(reference, field)
    assert step_a == step_b == 8 and state_a.keys() == state_b.keys() and state_a
    for key in state_b:
      np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=f"{field}{key}")
