"""Barlow Twins, VICReg and SimSiam: losses against float64 references and known answers,
global-batch statistics on an 8-device mesh, and a few training steps of each method."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl.state import split_model
from jax_ssl import losses, methods, sharding, train
from jax_ssl.methods.spec import StepContext

# Four examples, three zero-mean, unit-(biased)-variance, mutually orthogonal columns.
DECORRELATED = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], np.float32)


def reference_barlow_twins(z1, z2, off_diagonal_weight):
  """Barlow Twins eq. (1)-(2) in float64 numpy, element by element."""
  def standardize(z):
    z = np.asarray(z, np.float64)
    return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)  # numpy's var is the biased one
  z1, z2 = standardize(z1), standardize(z2)
  num_examples, dim = z1.shape
  total = 0.0
  for i in range(dim):
    for j in range(dim):
      c = sum(z1[b, i] * z2[b, j] for b in range(num_examples)) / num_examples
      total += (1 - c) ** 2 if i == j else off_diagonal_weight * c**2
  return total


def reference_vicreg(z1, z2, invariance_weight, variance_weight, covariance_weight):
  """VICReg eq. (1)-(6) in float64 numpy."""
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  dim = z1.shape[1]
  def variance(z):
    return np.mean(np.maximum(0.0, 1 - np.sqrt(z.var(0, ddof=1) + 1e-4)))
  def covariance(z):
    c = np.cov(z, rowvar=False)  # unbiased, (N - 1)
    return (np.sum(c**2) - np.sum(np.diag(c) ** 2)) / dim
  return (invariance_weight * np.mean((z1 - z2) ** 2)
          + variance_weight * (variance(z1) + variance(z2)) / 2
          + covariance_weight * (covariance(z1) + covariance(z2)))


def reference_simsiam(p, z):
  p, z = np.asarray(p, np.float64), np.asarray(z, np.float64)
  cos = np.sum(p * z, 1) / np.linalg.norm(p, axis=1) / np.linalg.norm(z, axis=1)
  return -np.mean(cos)


LOSSES = {
    "barlow_twins": (lambda a, b: losses.barlow_twins(a, b, 5e-3),
                     lambda a, b: reference_barlow_twins(a, b, 5e-3)),
    "vicreg": (lambda a, b: losses.vicreg(a, b, 25.0, 25.0, 1.0),
               lambda a, b: reference_vicreg(a, b, 25.0, 25.0, 1.0)),
    "simsiam": (losses.simsiam, reference_simsiam),
}


def correlated_views(seed, num_examples=32, dim=6):
  """Two noisy views of shared, correlated, non-centred latents (so every term is non-zero)."""
  rng = np.random.default_rng(seed)
  latent = rng.normal(size=(num_examples, dim)) @ rng.normal(size=(dim, dim)) + 0.5
  z1 = latent + 0.3 * rng.normal(size=latent.shape)
  z2 = 0.8 * latent + 0.3 * rng.normal(size=latent.shape)
  return z1.astype(np.float32), z2.astype(np.float32)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_matches_float64_reference(name, seed):
  loss_fn, reference = LOSSES[name]
  z1, z2 = correlated_views(seed, num_examples=12, dim=5)
  loss = loss_fn(z1, z2)
  assert loss.shape == () and loss.dtype == jnp.float32
  assert float(loss) == pytest.approx(reference(z1, z2), rel=1e-5)


def test_barlow_twins_known_answers():
  eps_scale = 1 / (1 + 1e-5)  # c_ii of identical standardised views: var / (var + eps)
  dim = DECORRELATED.shape[1]
  # Identical decorrelated views: c = I / (1 + eps); only the eps leaves a trace.
  same = losses.barlow_twins(DECORRELATED, DECORRELATED, 5e-3)
  assert float(same) == pytest.approx(dim * (1 - eps_scale) ** 2, abs=1e-9)
  # Opposite views: c = -I, each diagonal entry contributes (1 + 1)^2.
  opposite = losses.barlow_twins(DECORRELATED, -DECORRELATED, 5e-3)
  assert float(opposite) == pytest.approx(dim * (1 + eps_scale) ** 2, rel=1e-6)
  # Two copies of one column: c = [[1, 1], [1, 1]], only the two off-diagonals count.
  column = DECORRELATED[:, :1]
  redundant = np.concatenate([column, column], axis=1)
  loss = losses.barlow_twins(redundant, redundant, off_diagonal_weight=0.5)
  assert float(loss) == pytest.approx(2 * (1 - eps_scale) ** 2 + 0.5 * 2 * eps_scale**2,
                                      rel=1e-6)


def test_vicreg_known_answers():
  # A collapsed (constant) batch: no invariance or covariance cost, every dimension pays
  # the full variance hinge 1 - sqrt(0 + 1e-4).
  constant = np.full((8, 4), 3.0, np.float32)
  collapsed = losses.vicreg(constant, constant, 25.0, 25.0, 1.0)
  assert float(collapsed) == pytest.approx(25.0 * (1 - np.sqrt(1e-4)), rel=1e-6)
  # Decorrelated columns of std > 1, second view shifted by 1: only invariance = 1 remains.
  spread = 2.0 * DECORRELATED
  shifted = losses.vicreg(spread, spread + 1.0, invariance_weight=25.0, variance_weight=25.0,
                          covariance_weight=1.0)
  assert float(shifted) == pytest.approx(25.0, rel=1e-6)
  # Two copies of one column (unbiased variance 4/3): off-diagonal covariances (4/3)^2 twice,
  # divided by D = 2, for each of the two branches.
  redundant = np.repeat(DECORRELATED[:, :1], 2, axis=1)
  loss = losses.vicreg(redundant, redundant, 0.0, 0.0, covariance_weight=1.0)
  assert float(loss) == pytest.approx(2 * (2 * (4 / 3) ** 2 / 2), rel=1e-6)


def test_simsiam_known_answers_and_stop_gradient():
  rng = np.random.default_rng(3)
  p, z = rng.normal(size=(2, 6, 4)).astype(np.float32)
  assert float(losses.simsiam(z, z)) == pytest.approx(-1.0, abs=1e-6)
  assert float(losses.simsiam(-z, z)) == pytest.approx(1.0, abs=1e-6)
  assert float(losses.simsiam(5.0 * z, 0.1 * z)) == pytest.approx(-1.0, abs=1e-6)
  orthogonal = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
  assert float(losses.simsiam(orthogonal, orthogonal[::-1])) == pytest.approx(0.0, abs=1e-7)
  grad_p, grad_z = jax.grad(losses.simsiam, argnums=(0, 1))(p, z)
  np.testing.assert_array_equal(grad_z, np.zeros_like(z))  # the target is stop-gradient
  assert np.all(np.isfinite(grad_p)) and np.any(grad_p != 0)
  np.testing.assert_array_equal(jax.grad(losses.simsiam, argnums=1)(z, z), np.zeros_like(z))


def test_simsiam_zero_prediction_row_has_finite_zero_gradient():
  # A predictor row of all-dead ReLUs is exactly zero; it must not turn the gradient to NaN.
  rng = np.random.default_rng(6)
  p, z = rng.normal(size=(2, 4, 3)).astype(np.float32)
  p[1] = 0.0
  loss, grad = jax.value_and_grad(losses.simsiam)(p, z)
  grad, rows = np.asarray(grad), [0, 2, 3]
  assert float(loss) == pytest.approx(reference_simsiam(p[rows], z[rows]) * 3 / 4, rel=1e-6)
  assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0) and np.all(grad[rows] != 0)


def test_redundancy_losses_have_gradients_everywhere():
  z1, z2 = correlated_views(4, num_examples=16, dim=4)
  for name in ("barlow_twins", "vicreg"):
    grads = jax.grad(LOSSES[name][0], argnums=(0, 1))(z1, z2)
    for grad in grads:
      assert np.all(np.isfinite(grad)) and np.all(grad != 0), name


# ------------------------------------------------------------- global-batch statistics

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sharded_loss_uses_global_batch_statistics(name):
  assert jax.device_count() == 8, "conftest sets 8 host CPU devices"
  loss_fn, _ = LOSSES[name]
  z1, z2 = correlated_views(5, num_examples=32, dim=6)
  mesh = sharding.make_mesh()
  sharded = [jax.device_put(z, sharding.batch_sharding(mesh)) for z in (z1, z2)]
  assert all(len(z.sharding.device_set) == 8 for z in sharded)
  global_loss = float(jax.jit(loss_fn)(*sharded))
  unsharded_loss = float(loss_fn(z1, z2))
  assert global_loss == pytest.approx(unsharded_loss, rel=1e-5)
  # What per-device statistics would give: the loss of each 4-example shard, averaged.
  shards = np.split(np.arange(32), 8)
  per_shard_mean = float(np.mean([loss_fn(z1[rows], z2[rows]) for rows in shards]))
  if name == "simsiam":
    # A per-example loss (no batch statistic): the mean over shards is the global mean.
    assert per_shard_mean == pytest.approx(global_loss, rel=1e-5)
  else:
    assert abs(per_shard_mean - global_loss) > 0.1 * abs(global_loss), (
        per_shard_mean, global_loss)


# ------------------------------------------------------------- a few training steps

TRAINING = {
    "barlow_twins": ({"off_diagonal_weight": 5e-3}, {"projector_num_layers": 3}),
    "vicreg": ({"invariance_weight": 25.0, "variance_weight": 25.0, "covariance_weight": 1.0},
               {"projector_num_layers": 3}),
    "simsiam": ({}, {"predictor_hidden_dim": 8}),
}


def shift_invariant_bias(config) -> str:
  """Path of the projector's last bias. Each of these losses ignores a per-column shift of
  its projections (Barlow Twins and VICReg centre them over the batch; SimSiam's projections
  feed the predictor's BatchNorm and are otherwise stop-gradient targets), so this bias gets
  only rounding noise as gradient. The papers' code drops it (bias=False, or frozen in SimSiam).
  """
  last_linear = 3 * (typed(config).heads.projector_num_layers - 1)
  return f"['heads']['projector']['layers']['layers'][{last_linear}]['bias']"


def method_config(method, fake_fmnist, **overrides):
  method_args, head_args = TRAINING[method]
  config = tiny_config(*fake_fmnist, **overrides)
  config.method = method
  config.method_args = ml_collections.ConfigDict(method_args)
  config.heads.update(head_args)
  return config


@pytest.mark.parametrize("method", sorted(TRAINING))
def test_only_the_shift_invariant_bias_has_no_gradient(method):
  config = method_config(method, ("unused", "unused"))
  experiment = typed(config)
  model = train.config_lib.build_model(experiment, 1, experiment.seed)
  model.train()
  spec = methods.get_method(method)
  views = list(jax.random.uniform(jax.random.key(0), (2, 32, 28, 28, 1)))
  method_args = experiment.method_args
  context = StepContext(rng=jax.random.key(1), step=jnp.zeros((), jnp.int32))
  grads = nnx.grad(lambda m: spec.objective(m, views, {}, context, method_args)[0])(model)
  largest = {jax.tree_util.keystr(path): float(jnp.abs(g).max())
             for path, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads, nnx.Param))}
  invariant = [path for path in largest if path.startswith(shift_invariant_bias(config))]
  assert len(invariant) == 1 and largest[invariant[0]] < 1e-5, largest
  assert all(v > 1e-3 for path, v in largest.items() if path not in invariant), largest


@pytest.mark.parametrize("method", sorted(TRAINING))
def test_few_training_steps_move_every_parameter(method, fake_fmnist, tmp_path):
  config = method_config(method, fake_fmnist, total_steps=10, checkpoint_every_steps=100)
  config.optimizer.base_learning_rate = 4e-3
  initial = train.config_lib.build_model(typed(config), 1, typed(config).seed)
  out = train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  step_losses = np.array([r["loss"] for r in records])
  assert len(step_losses) == 10 and np.all(np.isfinite(step_losses))
  assert all(r[method] == r["loss"] for r in records)
  assert np.ptp(step_losses) > 1e-4 * np.abs(step_losses).max()
  before = jax.tree_util.tree_leaves_with_path(split_model(initial)[1])
  after = jax.tree.leaves(out["state"].params)
  # The shift-invariant bias (see above) moves only because Adam rescales its rounding-noise
  # gradient; whether it moves says nothing, so it is left out.
  frozen = [jax.tree_util.keystr(path) for (path, b), a in zip(before, after)
            if np.allclose(a, b)
            and not jax.tree_util.keystr(path).startswith(shift_invariant_bias(config))]
  assert not frozen, f"{method}: parameters that did not move: {frozen}"
