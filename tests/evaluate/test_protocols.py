"""Tests for jax_ssl.evaluate.knn and jax_ssl.evaluate.linear_probe (kNN, class-balanced subsets, linear probe)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl.evaluate import knn, linear_probe

NUM_CLASSES = 10
DIM = 32


def _clusters(rng, counts, *, dim=DIM, separation=10.0):
  """Gaussian clusters: class c centred on separation * e_c, unit noise. counts[c] rows of c."""
  labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
  means = separation * np.eye(len(counts), dim, dtype=np.float32)
  features = means[labels] + rng.normal(size=(len(labels), dim)).astype(np.float32)
  order = rng.permutation(len(labels))
  return features[order], labels[order]


def _separable(seed=0, train_per_class=100, test_per_class=50):
  rng = np.random.default_rng(seed)
  train = _clusters(rng, [train_per_class] * NUM_CLASSES)
  test = _clusters(rng, [test_per_class] * NUM_CLASSES)
  return (*train, *test)


def _pure_noise(seed=0, num_train=1000, num_test=1000):
  """Features carry no information about the (uniform random) labels."""
  rng = np.random.default_rng(seed)
  return (
      rng.normal(size=(num_train, DIM)).astype(np.float32),
      rng.integers(0, NUM_CLASSES, num_train).astype(np.int32),
      rng.normal(size=(num_test, DIM)).astype(np.float32),
      rng.integers(0, NUM_CLASSES, num_test).astype(np.int32),
  )


# --------------------------------------------------------------------------- kNN


def test_knn_separable_clusters_are_classified():
  accuracy = knn.knn_accuracy(*_separable(), num_classes=NUM_CLASSES)
  assert accuracy >= 0.99


def test_knn_uninformative_features_stay_at_chance():
  accuracy = knn.knn_accuracy(*_pure_noise(), num_classes=NUM_CLASSES)
  assert accuracy < 0.2


def _unit(angle):
  return [np.cos(angle), np.sin(angle)]


def test_knn_weighting_beats_majority_vote_hand_computed():
  # Test point on the x axis. Its 3 nearest train points (cosine): one class-0 point at
  # 0.1 rad and two class-1 points at +-0.8 rad; a class-0 point at pi is 4th and ignored.
  train = np.array([_unit(0.1), _unit(0.8), _unit(-0.8), _unit(np.pi)], np.float32)
  train_labels = np.array([0, 1, 1, 0])
  test = np.array([[3.0, 0.0]], np.float32)  # norm 3: must be normalised away
  # Hand computation with temperature 0.07:
  #   class 0: exp(cos 0.1 / 0.07) = exp(14.22) ~ 1.49e6
  #   class 1: 2 * exp(cos 0.8 / 0.07) = 2 * exp(9.95) ~ 4.2e4   -> predict 0
  score_0 = np.exp(np.cos(0.1) / 0.07)
  score_1 = 2 * np.exp(np.cos(0.8) / 0.07)
  assert score_0 > 30 * score_1
  weighted = knn.knn_accuracy(
      train, train_labels, test, np.array([0]), num_classes=2, k=3, temperature=0.07
  )
  assert weighted == 1.0
  # A huge temperature makes all weights ~1: plain majority vote, 2 votes to 1 for class 1.
  majority = knn.knn_accuracy(
      train, train_labels, test, np.array([0]), num_classes=2, k=3, temperature=1e4
  )
  assert majority == 0.0
  # k=4 adds the class-0 point at pi (weight exp(-1/0.07) ~ 6e-7): prediction unchanged
  # when weighted; with majority vote it is a 2:2 tie, broken towards the lower class.
  assert knn.knn_predict(
      train, train_labels, test, num_classes=2, k=4, temperature=0.07
  ).tolist() == [0]
  # k=1 keeps only the nearest neighbour.
  assert knn.knn_predict(
      train, train_labels, np.array([_unit(0.75)], np.float32), num_classes=2, k=1
  ).tolist() == [1]


def test_knn_k_larger_than_train_set_is_clipped():
  train = np.array([_unit(0.0), _unit(1.0), _unit(2.0)], np.float32)
  predictions = knn.knn_predict(
      train, np.array([0, 1, 1]), np.array([_unit(0.05)], np.float32), num_classes=2, k=200
  )
  assert predictions.tolist() == [0]


def test_knn_chunking_matches_single_chunk():
  rng = np.random.default_rng(3)
  train_features, train_labels = _clusters(rng, [40] * NUM_CLASSES, separation=1.5)
  test_features, test_labels = _clusters(rng, [10] * NUM_CLASSES, separation=1.5)
  test_features, test_labels = test_features[:97], test_labels[:97]  # 97 = 13 * 7 + 6
  kwargs = dict(num_classes=NUM_CLASSES, k=20)
  single = knn.knn_predict(train_features, train_labels, test_features,
                                 chunk_size=4096, **kwargs)
  chunked = knn.knn_predict(train_features, train_labels, test_features,
                                  chunk_size=13, **kwargs)
  np.testing.assert_array_equal(single, chunked)
  accuracy = knn.knn_accuracy(train_features, train_labels, test_features, test_labels,
                                    chunk_size=13, **kwargs)
  assert accuracy == pytest.approx(np.mean(single == test_labels))
  assert 0.3 < accuracy < 1.0  # overlapping clusters: a non-trivial accuracy to compare


# ------------------------------------------------------------- class-balanced subsets


def test_class_balanced_subset_counts_determinism_and_seed():
  # Imbalanced classes: class c has 40 + 10 c examples (n = 850).
  labels = np.repeat(np.arange(NUM_CLASSES), 40 + 10 * np.arange(NUM_CLASSES))
  labels = np.random.default_rng(0).permutation(labels)
  subset = linear_probe.class_balanced_subset(labels, 0.2, num_classes=NUM_CLASSES, seed=1)
  per_class = round(0.2 * len(labels) / NUM_CLASSES)  # 17
  assert per_class == 17
  np.testing.assert_array_equal(
      np.bincount(labels[subset], minlength=NUM_CLASSES), [per_class] * NUM_CLASSES
  )
  assert np.all(np.diff(subset) > 0)  # sorted, no repeats
  np.testing.assert_array_equal(
      subset, linear_probe.class_balanced_subset(labels, 0.2, num_classes=NUM_CLASSES, seed=1)
  )
  other = linear_probe.class_balanced_subset(labels, 0.2, num_classes=NUM_CLASSES, seed=2)
  assert not np.array_equal(subset, other)
  np.testing.assert_array_equal(
      np.bincount(labels[other], minlength=NUM_CLASSES), [per_class] * NUM_CLASSES
  )


def test_class_balanced_subset_minimum_one_and_too_few():
  labels = np.repeat(np.arange(NUM_CLASSES), 5)
  tiny = linear_probe.class_balanced_subset(labels, 1e-4, num_classes=NUM_CLASSES, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[tiny]), [1] * NUM_CLASSES)
  # Class 0 has a single example but round(0.5 * 82 / 10) = 4 are requested.
  uneven = np.repeat(np.arange(NUM_CLASSES), [1] + [9] * (NUM_CLASSES - 1))
  with pytest.raises(ValueError, match="class 0"):
    linear_probe.class_balanced_subset(uneven, 0.5, num_classes=NUM_CLASSES, seed=0)


# ------------------------------------------------------------------- linear probe

SMALL_GRID = (1e-4, 1e-2)


def test_linear_probe_separable_clusters():
  result = linear_probe.linear_probe_accuracy(
      *_separable(), num_classes=NUM_CLASSES, l2_grid=SMALL_GRID
  )
  assert result["top1"] >= 0.99
  # Both penalties classify the holdout perfectly; ties go to the larger penalty.
  assert result["l2"] == max(SMALL_GRID)


def test_linear_probe_uninformative_features_stay_at_chance():
  result = linear_probe.linear_probe_accuracy(
      *_pure_noise(), num_classes=NUM_CLASSES, l2_grid=SMALL_GRID
  )
  assert result["top1"] < 0.2
  assert result["l2"] in SMALL_GRID


def test_linear_probe_is_invariant_to_per_feature_affine_maps():
  # Standardisation with the training mean/std undoes x -> a * x + b (a > 0) per feature.
  train_x, train_y, test_x, test_y = _separable(seed=4)
  rng = np.random.default_rng(5)
  scale = rng.uniform(0.1, 100.0, DIM).astype(np.float32)
  shift = rng.uniform(-50.0, 50.0, DIM).astype(np.float32)
  reference = linear_probe.linear_probe_accuracy(
      train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, l2_grid=SMALL_GRID
  )
  mapped = linear_probe.linear_probe_accuracy(
      train_x * scale + shift, train_y, test_x * scale + shift, test_y,
      num_classes=NUM_CLASSES, l2_grid=SMALL_GRID,
  )
  assert mapped["l2"] == reference["l2"]
  assert mapped["top1"] == pytest.approx(reference["top1"], abs=0.01)
  # The statistics come from the training set only: shifting just the test features towards
  # class 3 moves most test points into class 3 (test-set statistics would cancel the shift).
  shifted_test_x = test_x + 30.0 * np.eye(1, DIM, 3, dtype=np.float32)
  shifted = linear_probe.linear_probe_accuracy(
      train_x, train_y, shifted_test_x, test_y, num_classes=NUM_CLASSES, l2_grid=SMALL_GRID
  )
  assert shifted["top1"] < 0.5


def test_linear_probe_selects_penalty_on_training_holdout_not_test():
  # Class 0 is the training majority (300 vs 50). A huge penalty zeroes W and predicts the
  # majority class from the bias alone: holdout top-1 ~ 0.4. A small penalty separates the
  # clusters: holdout top-1 ~ 1.0, so the holdout must pick the small one.
  rng = np.random.default_rng(6)
  train_x, train_y = _clusters(rng, [300] + [50] * (NUM_CLASSES - 1))
  small, huge = 1e-4, 1e3
  grid = (small, huge)
  honest_x, honest_y = _clusters(rng, [20] * NUM_CLASSES)
  honest = linear_probe.linear_probe_accuracy(
      train_x, train_y, honest_x, honest_y, num_classes=NUM_CLASSES, l2_grid=grid
  )
  assert honest["l2"] == small
  assert honest["top1"] >= 0.99
  # The selection is reported: held-out accuracy of each penalty, the small one far ahead.
  assert honest["holdout_top1"][small] >= 0.99 and honest["holdout_top1"][huge] < 0.5
  # Adversarial test set: class-3 features all labelled 0. Scored on the test set, `huge`
  # (always predicts 0) would get 1.0 and `small` 0.0; selection must ignore it.
  adversarial_x, _ = _clusters(rng, [0, 0, 0, 200] + [0] * (NUM_CLASSES - 4))
  adversarial_y = np.zeros(200, np.int32)
  adversarial = linear_probe.linear_probe_accuracy(
      train_x, train_y, adversarial_x, adversarial_y, num_classes=NUM_CLASSES, l2_grid=grid
  )
  assert adversarial["l2"] == small
  assert adversarial["top1"] <= 0.01
  # Sanity check of the premise: forced to `huge`, the probe does predict class 0 everywhere.
  forced = linear_probe.linear_probe_accuracy(
      train_x, train_y, adversarial_x, adversarial_y, num_classes=NUM_CLASSES, l2_grid=(huge,)
  )
  assert forced["top1"] == 1.0 and forced["l2"] == huge


def test_stratified_holdout_takes_fraction_of_every_class():
  labels = np.repeat(np.arange(4), [100, 50, 20, 1])
  holdout = linear_probe._stratified_holdout_mask(labels, 0.1, num_classes=4, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[holdout], minlength=4), [10, 5, 2, 0])


@pytest.mark.parametrize("num_rows", [300, 2000])  # < or >= 3 x 200 steps x 3 classes:
def test_preconditioned_lbfgs_reaches_a_stationary_point_of_the_original_objective(num_rows):
  # The solver works in preconditioned variables (with few rows, on the rows projected
  # once); its output must still minimise mean CE + 0.5 * l2 * ||W||^2 in the original W
  # (gradient ~ 0).
  rng = np.random.default_rng(7)
  features = rng.normal(size=(num_rows, 8)).astype(np.float32) * np.linspace(0.1, 5, 8)
  features = jnp.asarray(features, jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, num_rows))
  onehot = jax.nn.one_hot(labels, 3)
  weight = jnp.ones(num_rows)
  l2 = jnp.float32(1e-2)
  eigenvalues, eigenvectors = jnp.linalg.eigh(features.T @ features / num_rows)
  start = {"w": jnp.zeros((8, 3)), "b": jnp.zeros(3)}
  params, iterations = linear_probe._fit_logistic_regression_jit(
      features, onehot, weight, l2, start, eigenvectors, eigenvalues, jnp.float32(1e-6), 200
  )
  grad = jax.grad(linear_probe._probe_objective)(params, features, onehot, weight, l2)
  assert float(jnp.max(jnp.abs(grad["w"]))) < 1e-4
  assert float(jnp.max(jnp.abs(grad["b"]))) < 1e-4
  assert int(iterations) < 200  # stopped on the gradient tolerance


def test_stratified_folds_partition_every_class_evenly():
  labels = np.repeat(np.arange(3), [10, 20, 7])
  fold_of = linear_probe._stratified_folds(labels, 5, num_classes=3, seed=0)
  for c, n in enumerate([10, 20, 7]):
    counts = np.bincount(fold_of[labels == c], minlength=5)
    assert counts.sum() == n and counts.max() - counts.min() <= 1
  assert not np.array_equal(fold_of, linear_probe._stratified_folds(labels, 5, num_classes=3, seed=1))


def test_cross_validated_probe_on_separable_and_uninformative_data():
  cv = linear_probe.linear_probe_accuracy(*_separable(train_per_class=6), num_classes=NUM_CLASSES,
                                       l2_grid=SMALL_GRID, folds=3, steps=100)
  assert cv["top1"] >= 0.99 and cv["l2"] in SMALL_GRID
  noise = linear_probe.linear_probe_accuracy(*_pure_noise(num_train=60), num_classes=NUM_CLASSES,
                                          l2_grid=SMALL_GRID, folds=3, steps=100)
  assert noise["top1"] < 0.2


# ------------------------------------------------------------------- k sweep, protocols


def test_knn_sweep_equals_one_knn_per_k():
  # Overlapping clusters: the prediction depends on k, so a wrong slice of the shared top-k
  # (or a k mixed up with another) changes some predictions.
  rng = np.random.default_rng(11)
  train_x, train_y = _clusters(rng, [60] * NUM_CLASSES, separation=1.5)
  test_x, _ = _clusters(rng, [15] * NUM_CLASSES, separation=1.5)
  ks = (1, 10, 20, 100, 200, 1000)  # 1000 > 600 training points: clipped
  sweep = knn.knn_sweep_predict(train_x, train_y, test_x, num_classes=NUM_CLASSES, ks=ks,
                                chunk_size=64)
  assert sorted(sweep) == sorted(ks)
  for k in ks:
    np.testing.assert_array_equal(
        sweep[k], knn.knn_predict(train_x, train_y, test_x, num_classes=NUM_CLASSES, k=k))
  assert not np.array_equal(sweep[1], sweep[200])
  np.testing.assert_array_equal(sweep[1000], knn.knn_predict(
      train_x, train_y, test_x, num_classes=NUM_CLASSES, k=len(train_y)))


def test_parse_protocols():
  from jax_ssl.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from jax_ssl.evaluate import protocols  # pylint: disable=g-import-not-at-top
  default = protocols.parse_protocols("knn,linear,lowlabel-1%")
  assert default == protocols.Protocols(knn=True, linear=True, low_label_percents=(1.0,))
  assert default.frozen and not default.finetune
  everything = protocols.parse_protocols(["finetune", "lowlabel", "lowlabel-0.5%"])
  assert everything.finetune and everything.low_label_percents == (0.5, 1.0, 10.0)
  assert not everything.knn and not everything.linear
  assert not protocols.parse_protocols("none").frozen
  for bad in ("knn,linaer", "lowlabel-0%", "lowlabel-150%", "lowlabel1%"):
    with pytest.raises(ConfigError, match="unknown evaluation protocol") as info:
      protocols.parse_protocols(bad)
    assert "\n" not in str(info.value) and "lowlabel-<P>%" in str(info.value)


def test_frozen_feature_protocols_separable_noise_and_low_label_statistics():
  from jax_ssl.evaluate import protocols  # pylint: disable=g-import-not-at-top
  chosen = protocols.parse_protocols("knn,linear,lowlabel-20%")
  kwargs = dict(num_classes=NUM_CLASSES, knn_k=20, knn_k_sweep=(10, 50),
                knn_temperature=0.07, low_label_seeds=(0, 1, 2))
  separable, predictions = protocols.frozen_feature_protocols(
      *_separable(train_per_class=30, test_per_class=20), chosen, **kwargs)
  for key in ("knn_top1", "knn_k10_top1", "knn_k50_top1", "linear_top1", "linear_20pct_top1"):
    assert separable[key] >= 0.99, key
  assert separable["linear_20pct_top1_std"] < 0.01
  assert predictions.shape == (200,)
  assert separable["linear_l2"] in linear_probe.linear_probe_accuracy.__kwdefaults__["l2_grid"]
  # The chosen penalty is the best held-out one (ties: the largest).
  holdout = {float(l2): top1 for l2, top1 in separable["linear_holdout_top1"].items()}
  assert len(holdout) == 5 and holdout[separable["linear_l2"]] == max(holdout.values())

  train_x, train_y, test_x, test_y = _pure_noise(num_train=300, num_test=300)
  noise, _ = protocols.frozen_feature_protocols(train_x, train_y, test_x, test_y, chosen,
                                                **kwargs)
  assert noise["knn_top1"] < 0.2 and noise["linear_top1"] < 0.2
  # The low-label result is the mean and the sample std of one probe per seed's
  # class-balanced subset (20% of 300 = 6 per class).
  per_seed = noise["linear_20pct_top1_seeds"]
  for seed, value in zip((0, 1, 2), per_seed):
    subset = linear_probe.class_balanced_subset(train_y, 0.2, num_classes=NUM_CLASSES, seed=seed)
    assert len(subset) == 60
    expected = linear_probe.linear_probe_accuracy(train_x[subset], train_y[subset], test_x,
                                                  test_y, num_classes=NUM_CLASSES, folds=5,
                                                  steps=100)
    assert value == expected["top1"]
  assert noise["linear_20pct_top1"] == pytest.approx(np.mean(per_seed), abs=1e-12)
  assert noise["linear_20pct_top1_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
  assert noise["linear_20pct_top1"] < 0.2 and noise["linear_20pct_top1_std"] > 0
