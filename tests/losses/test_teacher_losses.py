"""BYOL, MoCo (v2/v3), DINO, SwAV (Sinkhorn-Knopp) and NNCLR losses: float64 references,
known answers, stop-gradients, and global-batch statistics on an 8-device mesh."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jax_ssl import losses, sharding


# ------------------------------------------------------------- float64 references

def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  shifted = x - x.max()
  return shifted - np.log(np.sum(np.exp(shifted)))


def reference_byol(p, z):
  p, z = _unit(p), _unit(z)
  return np.mean([2 - 2 * np.dot(p[i], z[i]) for i in range(len(p))])


def reference_info_nce(query, key, temperature, scale_by_temperature=True):
  q, k = _unit(query), _unit(key)
  terms = [-_log_softmax([np.dot(q[i], k[j]) / temperature for j in range(len(k))])[i]
           for i in range(len(q))]
  return np.mean(terms) * (2 * temperature if scale_by_temperature else 1.0)


def reference_moco_v2(query, key, queue, temperature):
  q, k, n = _unit(query), _unit(key), _unit(queue)
  terms = []
  for i in range(len(q)):
    logits = [np.dot(q[i], k[i])] + [np.dot(q[i], n[j]) for j in range(len(n))]
    terms.append(-_log_softmax(np.array(logits) / temperature)[0])
  return np.mean(terms)


def reference_dino(student, teacher, center, student_temp, teacher_temp):
  student, teacher = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
  center = np.asarray(center, np.float64)
  total, pairs = 0.0, 0
  for t in range(teacher.shape[0]):
    for s in range(student.shape[0]):
      if s == t:
        continue
      per_example = []
      for b in range(teacher.shape[1]):
        target = np.exp(_log_softmax((teacher[t, b] - center) / teacher_temp))
        per_example.append(-np.sum(target * _log_softmax(student[s, b] / student_temp)))
      total += np.mean(per_example)
      pairs += 1
  return total / pairs


def reference_sinkhorn(scores, epsilon, num_iterations):
  """SwAV's `distributed_sinkhorn` (one process), literally, in float64."""
  q = np.exp(np.asarray(scores, np.float64) / epsilon).T  # [K, B]
  num_prototypes, batch_size = q.shape
  q /= q.sum()
  for _ in range(num_iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= num_prototypes
    q /= q.sum(axis=0, keepdims=True)
    q /= batch_size
  return (q * batch_size).T


def reference_swav(scores, codes, temperature):
  scores, codes = np.asarray(scores, np.float64), np.asarray(codes, np.float64)
  total, pairs = 0.0, 0
  for c in range(codes.shape[0]):
    for w in range(scores.shape[0]):
      if w == c:
        continue
      total += np.mean([-np.sum(codes[c, b] * _log_softmax(scores[w, b] / temperature))
                        for b in range(scores.shape[1])])
      pairs += 1
  return total / pairs


def reference_nearest_neighbour(z, support):
  z_unit, support_unit = _unit(z), _unit(support)
  return np.stack([support[np.argmax([np.dot(row, s) for s in support_unit])]
                   for row in z_unit])


def reference_nnclr(nn, p, temperature):
  return reference_info_nce(nn, p, temperature, scale_by_temperature=False)


# ------------------------------------------------------------- inputs

def paired_rows(seed, num_rows=10, dim=6):
  """Two correlated [N, D] float32 arrays (noisy views of shared latents)."""
  rng = np.random.default_rng(seed)
  latent = rng.normal(size=(num_rows, dim))
  return ((latent + 0.5 * rng.normal(size=latent.shape)).astype(np.float32),
          (latent + 0.5 * rng.normal(size=latent.shape)).astype(np.float32))


def prototype_scores(seed, shape, num_prototypes=5, dim=4):
  """Cosine scores [..., K] between random unit embeddings and unit prototypes."""
  rng = np.random.default_rng(seed)
  embeddings = _unit(rng.normal(size=(*shape, dim)))
  prototypes = _unit(rng.normal(size=(num_prototypes, dim)))
  return (embeddings @ prototypes.T).astype(np.float32)


def dino_inputs(seed, num_student=4, num_teacher=2, batch=5, classes=6):
  rng = np.random.default_rng(seed)
  student = rng.normal(size=(num_student, batch, classes)).astype(np.float32)
  teacher = (student[:num_teacher] + 0.3 * rng.normal(size=(num_teacher, batch, classes)))
  center = 0.2 * rng.normal(size=classes)
  return student, teacher.astype(np.float32), center.astype(np.float32)


# ------------------------------------------------------------- against references

@pytest.mark.parametrize("seed", [0, 1])
def test_byol_info_nce_moco_v2_match_float64_references(seed):
  p, z = paired_rows(seed)
  queue = np.random.default_rng(seed + 10).normal(size=(7, 6)).astype(np.float32)
  cases = [
      (losses.byol(p, z), reference_byol(p, z)),
      (losses.info_nce(p, z, 0.2), reference_info_nce(p, z, 0.2)),
      (losses.info_nce(p, z, 0.2, scale_by_temperature=False),
       reference_info_nce(p, z, 0.2, scale_by_temperature=False)),
      (losses.moco_v2(p, z, queue, 0.2), reference_moco_v2(p, z, queue, 0.2)),
  ]
  for loss, expected in cases:
    assert loss.shape == () and loss.dtype == jnp.float32
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_dino_matches_float64_reference(seed):
  student, teacher, center = dino_inputs(seed)
  loss = losses.dino(student, teacher, center, 0.1, 0.04)
  assert loss.shape == () and loss.dtype == jnp.float32
  assert float(loss) == pytest.approx(reference_dino(student, teacher, center, 0.1, 0.04),
                                      rel=1e-5)
  new_center = losses.dino_center_update(center, teacher, 0.9)
  np.testing.assert_allclose(new_center, 0.9 * center + 0.1 * teacher.mean(axis=(0, 1)),
                             rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_sinkhorn_and_swav_match_float64_references(seed):
  scores = prototype_scores(seed, (4, 12))  # [V, B, K]
  codes = np.stack([losses.sinkhorn_knopp(scores[v], 0.05, 3) for v in range(2)])
  expected_codes = np.stack([reference_sinkhorn(scores[v], 0.05, 3) for v in range(2)])
  np.testing.assert_allclose(codes, expected_codes, rtol=1e-5, atol=1e-12)
  loss = losses.swav(scores, codes, 0.1)
  assert loss.shape == () and loss.dtype == jnp.float32
  assert float(loss) == pytest.approx(reference_swav(scores, expected_codes, 0.1), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_nnclr_matches_float64_reference(seed):
  z, p = paired_rows(seed)
  support = np.random.default_rng(seed + 20).normal(size=(9, 6)).astype(np.float32)
  nn = losses.nearest_neighbour(z, support)
  np.testing.assert_array_equal(nn, reference_nearest_neighbour(z, support).astype(np.float32))
  loss = losses.nnclr(nn, p, 0.2)
  assert loss.shape == () and loss.dtype == jnp.float32
  assert float(loss) == pytest.approx(reference_nnclr(nn, p, 0.2), rel=1e-5)


# ------------------------------------------------------------- known answers

def test_byol_known_answers():
  z = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
  assert float(losses.byol(z, z)) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.byol(3.0 * z, 0.5 * z)) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.byol(-z, z)) == pytest.approx(4.0, rel=1e-6)
  orthogonal = np.eye(2, dtype=np.float32)
  assert float(losses.byol(orthogonal, orthogonal[::-1])) == pytest.approx(2.0, rel=1e-6)


def test_info_nce_and_moco_v2_known_answers():
  n, tau = 4, 0.01
  one_hot = np.eye(n, dtype=np.float32)
  # Perfectly separated keys: log(1 + 3 exp(-1 / tau)) ~ 0.
  assert float(losses.info_nce(one_hot, one_hot, tau)) == pytest.approx(0.0, abs=1e-7)
  # All keys equal: every logit of a row is the same, the cross-entropy is log N.
  queries = np.random.default_rng(4).normal(size=(n, 3)).astype(np.float32)
  same_keys = np.tile(np.array([[1.0, 2.0, -1.0]], np.float32), (n, 1))
  assert float(losses.info_nce(queries, same_keys, 0.2)) == pytest.approx(
      2 * 0.2 * np.log(n), rel=1e-6)
  assert float(losses.info_nce(queries, same_keys, 0.2, scale_by_temperature=False)) == (
      pytest.approx(np.log(n), rel=1e-6))
  # MoCo v2: q = k (logit 1 / tau), queue orthogonal to q (logits 0):
  # log(1 + K exp(-1 / tau)); in-batch keys are not negatives.
  eye = np.eye(4, dtype=np.float32)
  loss = losses.moco_v2(eye[:2], 2.0 * eye[:2], eye[2:], 0.5)
  assert float(loss) == pytest.approx(np.log(1 + 2 * np.exp(-2.0)), rel=1e-6)


def test_dino_known_answers():
  # One teacher view, two student views: only the pair (teacher 0, student 1) counts.
  # Teacher probs softmax([0, log 3]) = [1/4, 3/4]; student view 1 equals the teacher, so the
  # loss is that distribution's entropy. Student view 0 (the teacher's own view) is ignored.
  teacher = np.array([[[0.0, np.log(3.0)]]], np.float32)  # [T=1, B=1, K=2]
  student = np.concatenate([np.array([[[50.0, -50.0]]], np.float32), teacher])
  entropy = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
  loss = losses.dino(student, teacher, np.zeros(2, np.float32), 1.0, 1.0)
  assert float(loss) == pytest.approx(entropy, rel=1e-6)
  # Different temperatures: teacher [0, 0.5 log 3] / 0.5 -> [1/4, 3/4]; student view 1
  # [0.1 log 3, 0] / 0.1 -> [3/4, 1/4]; cross-entropy -(1/4 log 3/4 + 3/4 log 1/4).
  teacher = np.array([[[0.0, 0.5 * np.log(3.0)]]], np.float32)
  student = np.array([[[0.0, 0.0]], [[0.1 * np.log(3.0), 0.0]]], np.float32)
  loss = losses.dino(student, teacher, np.zeros(2, np.float32), 0.1, 0.5)
  assert float(loss) == pytest.approx(-(0.25 * np.log(0.75) + 0.75 * np.log(0.25)), rel=1e-6)
  # The center shifts the teacher: centering [0, 0.5 log 3] away gives uniform targets,
  # whose cross-entropy with [3/4, 1/4] is -(log 3/4 + log 1/4) / 2.
  loss = losses.dino(student, teacher, teacher[0, 0], 0.1, 0.5)
  assert float(loss) == pytest.approx(-(np.log(0.75) + np.log(0.25)) / 2, rel=1e-6)


def test_dino_skips_same_view_pairs():
  # Teacher view t is sharply class t; student view s predicts sharply class 1 - s. Every
  # cross-view pair agrees (loss ~ 0); each same-view pair would cost ~50.
  teacher = np.array([[[100.0, 0.0]], [[0.0, 100.0]]], np.float32)
  student = np.array([[[0.0, 50.0]], [[50.0, 0.0]]], np.float32)
  loss = losses.dino(student, teacher, np.zeros(2, np.float32), 1.0, 1.0)
  assert float(loss) == pytest.approx(0.0, abs=1e-6)
  assert float(losses.dino(student[::-1], teacher, np.zeros(2), 1.0, 1.0)) == pytest.approx(
      50.0, rel=1e-5)


def test_sinkhorn_known_answers():
  scores = prototype_scores(5, (16,), num_prototypes=4)
  # Rows (samples) always sum to 1; after enough iterations every prototype gets B / K.
  codes = np.asarray(losses.sinkhorn_knopp(scores, 0.1, 200))
  np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(codes.sum(axis=0), 16 / 4, rtol=1e-3)
  few = np.asarray(losses.sinkhorn_knopp(scores, 0.05, 3))
  np.testing.assert_allclose(few.sum(axis=1), 1.0, rtol=1e-5)
  # Equal scores: the uniform assignment 1 / K.
  uniform = losses.sinkhorn_knopp(np.full((6, 3), 0.7, np.float32), 0.05, 3)
  np.testing.assert_allclose(uniform, 1 / 3, rtol=1e-6)
  # A per-prototype offset of the scores is normalised away by the first step; a per-sample
  # one only at convergence (the fixed point diag(a) exp(S / eps) diag(b) is unique).
  # Large logits (scores / eps ~ 1e4) neither overflow nor underflow.
  rng = np.random.default_rng(6)
  per_prototype = rng.normal(size=(1, 4)).astype(np.float32)
  np.testing.assert_allclose(losses.sinkhorn_knopp(scores + per_prototype, 0.05, 3), few,
                             rtol=1e-4, atol=1e-7)
  per_sample = 0.3 * rng.normal(size=(16, 1)).astype(np.float32)
  np.testing.assert_allclose(
      losses.sinkhorn_knopp(scores + per_sample + per_prototype, 0.1, 200), codes,
      rtol=1e-3, atol=1e-6)
  sharp = np.asarray(losses.sinkhorn_knopp(100.0 * scores, 0.01, 3))
  assert np.all(np.isfinite(sharp))
  np.testing.assert_allclose(sharp.sum(axis=1), 1.0, rtol=1e-5)
  # No iterations: exp(scores / eps) normalised to total mass B.
  np.testing.assert_allclose(losses.sinkhorn_knopp(scores, 0.5, 0),
                             reference_sinkhorn(scores, 0.5, 0), rtol=1e-5)


def test_sinkhorn_masked_rows_take_no_part():
  # eps = 1, one iteration, Q = exp(scores): valid rows [1, 3] and [1, 1], a masked row
  # [5, 1] between them. By hand on the valid rows: / total 6 -> [1/6, 1/2], [1/6, 1/6];
  # prototype sums 1/3, 2/3 -> 1/2 each: [1/4, 3/8], [1/4, 1/8]; sample sums 5/8, 3/8 ->
  # 1/2 each: [1/5, 3/10], [1/3, 1/6]; times B = 2 valid rows: [2/5, 3/5], [2/3, 1/3].
  scores = np.log(np.array([[1.0, 3.0], [5.0, 1.0], [1.0, 1.0]], np.float32))
  valid = np.array([True, False, True])
  codes = np.asarray(losses.sinkhorn_knopp(scores, 1.0, 1, valid=valid))
  np.testing.assert_allclose(codes, [[2 / 5, 3 / 5], [0.0, 0.0], [2 / 3, 1 / 3]], rtol=1e-6)
  # Exactly the codes of the valid rows alone; the masked row would have changed them.
  np.testing.assert_allclose(codes[valid], losses.sinkhorn_knopp(scores[valid], 1.0, 1),
                             rtol=1e-6)
  assert not np.allclose(losses.sinkhorn_knopp(scores, 1.0, 1)[valid], codes[valid], rtol=1e-2)
  # SwAV's setting (eps 0.05, 3 iterations), random scores, 5 of 12 rows masked.
  scores = prototype_scores(3, (1, 12))[0]
  valid = np.arange(12) % 5 < 3
  codes = np.asarray(losses.sinkhorn_knopp(scores, 0.05, 3, valid=valid))
  np.testing.assert_allclose(codes[valid], reference_sinkhorn(scores[valid], 0.05, 3),
                             rtol=1e-5, atol=1e-12)
  assert np.all(codes[~valid] == 0.0)
  np.testing.assert_array_equal(losses.sinkhorn_knopp(scores, 0.05, 3, valid=np.ones(12, bool)),
                                losses.sinkhorn_knopp(scores, 0.05, 3))


def test_swav_known_answers():
  # Two views, both code views, K = 2, B = 1, temperature 0.5.
  # (code 0 = [1, 0], predicted from view 1 = softmax([0.5 log 3, 0] / 0.5) = [3/4, 1/4]):
  #   -log 3/4;  (code 1 = [1/2, 1/2], predicted from view 0 = uniform): log 2.
  scores = np.array([[[0.0, 0.0]], [[0.5 * np.log(3.0), 0.0]]], np.float32)
  codes = np.array([[[1.0, 0.0]], [[0.5, 0.5]]], np.float32)
  loss = losses.swav(scores, codes, 0.5)
  assert float(loss) == pytest.approx((-np.log(0.75) + np.log(2.0)) / 2, rel=1e-6)
  # One code view, three views: the code view's own scores never count; uniform
  # predictions from the other views cost log K whatever the codes.
  scores = np.zeros((3, 4, 5), np.float32)
  scores[0] = 100.0 * np.eye(4, 5)
  codes = np.asarray(losses.sinkhorn_knopp(scores[0], 0.05, 3))[None]
  assert float(losses.swav(scores, codes, 0.1)) == pytest.approx(np.log(5.0), rel=1e-6)


def test_nearest_neighbour_picks_the_most_cosine_similar_row():
  support = np.array([[10.0, 0.0], [0.0, 0.1], [-1.0, -1.0]], np.float32)
  z = np.array([[0.1, 0.0], [0.2, 5.0], [-3.0, -2.0], [1.0, 1.1]], np.float32)
  # Cosine, not dot product: [0, 0.1] wins for the second row despite its small norm.
  np.testing.assert_array_equal(losses.nearest_neighbour(z, support),
                                support[np.array([0, 1, 2, 1])])
  # A support set that is z itself returns z; NNCLR is then MoCo v3's unscaled InfoNCE.
  np.testing.assert_array_equal(losses.nearest_neighbour(z, z), z)
  assert float(losses.nnclr(z, support[[0, 1, 2, 1]], 0.5)) == pytest.approx(
      float(losses.info_nce(z, support[[0, 1, 2, 1]], 0.5, scale_by_temperature=False)),
      rel=1e-6)


# ------------------------------------------------------------- gradients

def _grad(fn, argnums=0):
  """jax.grad under jit (one compilation instead of many eager ops)."""
  return jax.jit(jax.grad(fn, argnums=argnums))


def _finite_nonzero(grad):
  grad = np.asarray(grad)
  return np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_online_inputs_have_gradients_and_stop_gradient_inputs_have_none():
  p, z = paired_rows(7)
  queue = np.random.default_rng(8).normal(size=(5, 6)).astype(np.float32)
  for fn, args in ((losses.byol, (p, z)),
                   (functools.partial(losses.info_nce, temperature=0.2), (p, z)),
                   (functools.partial(losses.moco_v2, queue=queue, temperature=0.2), (p, z))):
    # No stop-gradient inside: both arguments get gradients (the caller stops the target).
    assert all(_finite_nonzero(g) for g in _grad(fn, (0, 1))(*args)), fn

  student, teacher, center = dino_inputs(9)
  g_student, g_teacher, g_center = _grad(losses.dino, (0, 1, 2))(
      student, teacher, center, 0.1, 0.04)
  assert _finite_nonzero(g_student) and np.all(np.asarray(g_student) != 0)
  np.testing.assert_array_equal(g_teacher, np.zeros_like(teacher))
  np.testing.assert_array_equal(g_center, np.zeros_like(center))
  g_teacher = _grad(lambda t: jnp.sum(losses.dino_center_update(center, t, 0.9)))(teacher)
  np.testing.assert_array_equal(g_teacher, np.zeros_like(teacher))

  scores = prototype_scores(10, (3, 8))
  sinkhorn = jax.vmap(functools.partial(losses.sinkhorn_knopp, epsilon=0.05, num_iterations=3))
  codes = jax.jit(sinkhorn)(scores[:2])
  g_scores, g_codes = _grad(losses.swav, (0, 1))(scores, codes, 0.1)
  assert _finite_nonzero(g_scores)
  np.testing.assert_array_equal(g_codes, np.zeros_like(codes))
  weights = np.random.default_rng(11).normal(size=scores[0].shape)
  g_sinkhorn = _grad(lambda s: jnp.sum(losses.sinkhorn_knopp(s, 0.05, 3) * weights))(
      scores[0])
  np.testing.assert_array_equal(g_sinkhorn, np.zeros_like(scores[0]))
  # Codes computed inside the differentiated function change nothing: same gradient.
  end_to_end = _grad(lambda s: losses.swav(s, sinkhorn(s[:2]), 0.1))(scores)
  np.testing.assert_allclose(end_to_end, g_scores, rtol=1e-4, atol=1e-7)

  g_nn, g_p = _grad(losses.nnclr, (0, 1))(z, p, 0.2)
  np.testing.assert_array_equal(g_nn, np.zeros_like(z))
  assert _finite_nonzero(g_p)
  g_z, g_support = _grad(lambda a, b: jnp.sum(losses.nearest_neighbour(a, b)), (0, 1))(
      z, queue)
  np.testing.assert_array_equal(g_z, np.zeros_like(z))
  np.testing.assert_array_equal(g_support, np.zeros_like(queue))


# ------------------------------------------------------------- global-batch statistics

def test_sinkhorn_uses_global_batch_statistics():
  assert jax.device_count() == 8, "conftest sets 8 host CPU devices"
  scores = prototype_scores(12, (64,), num_prototypes=5)
  mesh = sharding.make_mesh()
  sharded = jax.device_put(scores, sharding.batch_sharding(mesh))
  assert len(sharded.sharding.device_set) == 8
  sinkhorn = jax.jit(functools.partial(losses.sinkhorn_knopp, epsilon=0.05, num_iterations=3))
  global_codes = np.asarray(jax.jit(sinkhorn)(sharded))
  np.testing.assert_allclose(global_codes, sinkhorn(scores), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(global_codes, reference_sinkhorn(scores, 0.05, 3), rtol=1e-5,
                             atol=1e-9)
  # Per-device Sinkhorn (no all-reduce) forces an equal partition inside every 8-example
  # shard: a different assignment.
  per_shard = np.concatenate([sinkhorn(rows) for rows in np.split(scores, 8)])
  assert np.max(np.abs(per_shard - global_codes)) > 0.1


def test_dino_center_and_swav_use_global_batch_statistics():
  mesh = sharding.make_mesh()
  view_batch = NamedSharding(mesh, PartitionSpec(None, sharding.DATA_AXIS))
  rng = np.random.default_rng(13)
  # Shards with different means, so per-device centers disagree.
  teacher = (rng.normal(size=(2, 64, 5)) + np.repeat(rng.normal(size=(8, 5)), 8, axis=0)
             ).astype(np.float32)
  center = rng.normal(size=5).astype(np.float32)
  update = jax.jit(functools.partial(losses.dino_center_update, momentum=0.9))
  global_center = update(center, jax.device_put(teacher, view_batch))
  assert global_center.sharding.is_fully_replicated
  np.testing.assert_allclose(global_center, update(center, teacher), rtol=1e-6, atol=1e-7)
  per_device = [np.asarray(update(center, teacher[:, rows]))
                for rows in np.split(np.arange(64), 8)]
  assert all(np.max(np.abs(c - np.asarray(global_center))) > 0.01 for c in per_device)

  # SwAV end to end (codes of the first two views by Sinkhorn over the global batch).
  scores = prototype_scores(14, (3, 64), num_prototypes=5)
  @jax.jit
  def swav_step(s):
    codes = jnp.stack([losses.sinkhorn_knopp(s[v], 0.05, 3) for v in range(2)])
    return losses.swav(s, codes, 0.1)
  global_loss = float(swav_step(jax.device_put(scores, view_batch)))
  assert global_loss == pytest.approx(float(swav_step(scores)), rel=1e-5)
  per_shard = np.mean([float(swav_step(scores[:, rows])) for rows in np.split(np.arange(64), 8)])
  assert abs(per_shard - global_loss) > 1e-3 * abs(global_loss), (per_shard, global_loss)
