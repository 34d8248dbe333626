"""LeJEPA and SIGReg: the statistic against an independent complex-valued float64
reference, known answers, global-batch statistics on 8 devices, and the train step on 1
vs 8 devices."""

import jax
import numpy as np
import pytest

from conftest import step_losses, tiny_config
from jax_ssl import losses, sharding


def reference_sigreg(z, projections, t_max=3.0, num_points=17):
  """N * integral over [-t_max, t_max] of |ecf - gaussian cf|^2 * gaussian cf, by numpy's
  trapezoid on the symmetric grid, with complex exponentials; mean over directions."""
  z, projections = np.asarray(z, np.float64), np.asarray(projections, np.float64)
  t = np.linspace(-t_max, t_max, 2 * num_points - 1)
  gaussian = np.exp(-t**2 / 2)
  values = []
  for x in (z @ projections).T:  # each direction's 1-D sample
    ecf = np.mean(np.exp(1j * t[None, :] * x[:, None]), axis=0)
    values.append(len(x) * np.trapezoid(np.abs(ecf - gaussian) ** 2 * gaussian, t))
  return np.mean(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigreg_matches_complex_reference(seed):
  rng = np.random.default_rng(seed)
  z = (rng.normal(size=(40, 5)) * rng.uniform(0.3, 2.0, size=5) + 0.2).astype(np.float32)
  projections = np.asarray(losses.random_directions(jax.random.key(seed), 5, 7))
  np.testing.assert_allclose(np.linalg.norm(projections, axis=0), 1.0, rtol=1e-6)
  value = losses.sigreg(z, projections)
  assert value.shape == () and float(value) == pytest.approx(reference_sigreg(z, projections),
                                                             rel=1e-4)


def test_sigreg_known_answers():
  projections = np.eye(3, dtype=np.float32)
  # Collapse: every sample is 0, so ecf = 1 and the statistic is
  # N * integral (1 - exp(-t^2/2))^2 exp(-t^2/2) dt on the 3-knot grid [0, 1.5, 3] doubled
  # (weights 1.5 * [1, 2, 1]).
  t = np.array([0.0, 1.5, 3.0])
  integrand = (1 - np.exp(-t**2 / 2)) ** 2 * np.exp(-t**2 / 2)
  expected = 10 * np.sum(1.5 * np.array([1, 2, 1]) * integrand)
  collapsed = losses.sigreg(np.zeros((10, 3), np.float32), projections, num_points=3)
  assert float(collapsed) == pytest.approx(expected, rel=1e-6)
  # Samples that are (nearly) standard normal score far lower than collapsed or
  # over-dispersed ones of the same size.
  gaussian = np.random.default_rng(0).normal(size=(4096, 3)).astype(np.float32)
  near_zero = float(losses.sigreg(gaussian, projections))
  assert near_zero < 2.0
  assert float(losses.sigreg(3 * gaussian, projections)) > 50 * near_zero
  assert float(losses.sigreg(0 * gaussian, projections)) > 50 * near_zero


def test_lejepa_known_answers_and_gradient_through_every_view():
  rng = np.random.default_rng(1)
  base = rng.normal(size=(16, 4)).astype(np.float32)
  projections = np.asarray(losses.random_directions(jax.random.key(0), 4, 8))
  sig = float(losses.sigreg(np.stack([base, base]), projections))
  # Identical views: no prediction error, only lambda * SIGReg.
  same = losses.lejepa(np.stack([base, base]), projections, sigreg_weight=0.25)
  assert float(same) == pytest.approx(0.25 * sig, rel=1e-6)
  # Views base +- d: the centre is base, each view misses it by d in every entry.
  d = 0.5
  views = np.stack([base + d, base - d])
  loss = losses.lejepa(views, projections, sigreg_weight=0.0)
  assert float(loss) == pytest.approx(d**2, rel=1e-6)
  # Only the first view is global: the centre is view 0, view 1 misses it by 2d in half
  # of the (view, example, dim) entries.
  loss = losses.lejepa(views, projections, sigreg_weight=0.0, num_global_views=1)
  assert float(loss) == pytest.approx((2 * d) ** 2 / 2, rel=1e-6)
  # No stop-gradient anywhere: every view and entry gets a gradient.
  grad = jax.grad(losses.lejepa)(np.stack([base, base + 1.0, base * 2]), projections, 0.5)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad) != 0)


def test_sigreg_uses_global_batch_statistics():
  assert jax.device_count() == 8
  rng = np.random.default_rng(2)
  z = (rng.normal(size=(2, 64, 6)) * 1.5 + 0.3).astype(np.float32)  # [V, N, K]
  projections = np.asarray(losses.random_directions(jax.random.key(3), 6, 16))
  mesh = sharding.make_mesh()
  sharded = jax.device_put(
      z, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, sharding.DATA_AXIS)))
  assert len(sharded.sharding.device_set) == 8
  global_value = float(jax.jit(losses.lejepa)(sharded, projections, 0.5))
  assert global_value == pytest.approx(float(losses.lejepa(z, projections, 0.5)), rel=1e-5)
  per_shard = np.mean([float(losses.lejepa(z[:, rows], projections, 0.5))
                       for rows in np.split(np.arange(64), 8)])
  assert abs(per_shard - global_value) > 0.1 * global_value, (per_shard, global_value)


STEP_CONFIGS = {
    "lejepa": ({"num_views": 3, "sigreg_weight": 0.1, "num_slices": 16},
               {"projector_hidden_dim": 16, "projector_output_dim": 8, "projector_num_layers": 2}),
    "jigsaw": ({"grid": 3, "gap": 1, "jitter": 1, "num_permutations": 12, "permutation_seed": 0},
               {"classifier_hidden_dim": 8, "classifier_num_layers": 2}),
}


@pytest.mark.parametrize("method", sorted(STEP_CONFIGS))
def test_train_step_is_the_same_on_1_and_8_devices(method):
  method_args, heads = STEP_CONFIGS[method]
  config = tiny_config("unused", "unused")
  config.method = method
  config.method_args = method_args
  config.heads = heads
  one, eight = step_losses(config, 1), step_losses(config, 8)
  for a, b in zip(one, eight):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
  assert one[0]["loss"] != pytest.approx(one[-1]["loss"], rel=1e-4)  # the steps did something
