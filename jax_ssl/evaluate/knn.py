"""Weighted kNN on frozen features: a pure function on arrays (no config).

Numpy or jax arrays in, Python floats / numpy arrays out; every knob is a keyword argument.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl.losses import l2_normalize

# ----------------------------------------------------------------------------
# Weighted kNN
# ----------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("ks", "num_classes"))
def _knn_predict_chunk(
    train_normalised: jax.Array,
    train_labels: jax.Array,
    test_chunk: jax.Array,
    temperature: jax.Array,
    *,
    ks: tuple[int, ...],
    num_classes: int,
) -> jax.Array:
  """Weighted-kNN class predictions for one chunk of test points, for several k at once.

  Args:
    train_normalised: [num_train, d] float32, rows of unit norm.
    train_labels: [num_train] int32.
    test_chunk: [chunk, d] float32 (normalised here).
    temperature: scalar; neighbour weight is exp(similarity / temperature).
    ks: neighbour counts (each <= num_train); one top_k of max(ks) serves them all (its
      neighbours come sorted by similarity, so the first k are the k nearest).
    num_classes: number of classes.

  Returns:
    [len(ks), chunk] int32 predicted classes (argmax of summed weights; ties -> lowest class).
  """
  similarity = l2_normalize(test_chunk) @ train_normalised.T  # [chunk, num_train]
  top_similarity, top_index = jax.lax.top_k(similarity, max(ks))  # [chunk, k_max]
  top_labels = train_labels[top_index]  # [chunk, k_max]
  weights = jnp.exp(top_similarity / temperature)  # [chunk, k_max]
  weighted_votes = (jax.nn.one_hot(top_labels, num_classes, dtype=weights.dtype)
                    * weights[..., None])  # [chunk, k_max, num_classes]
  return jnp.stack([
      jnp.argmax(jnp.sum(weighted_votes[:, :k], axis=1), axis=-1).astype(jnp.int32)
      for k in ks])


def knn_sweep_predict(
    train_features: jax.typing.ArrayLike,
    train_labels: jax.typing.ArrayLike,
    test_features: jax.typing.ArrayLike,
    *,
    num_classes: int,
    ks: Sequence[int] = (10, 20, 100, 200),
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> dict[int, np.ndarray]:
  """Weighted-kNN predicted class of every test point for each k in `ks` (see
  `knn_accuracy`), from one similarity pass.

  Args:
    train_features: [num_train, d].
    train_labels: [num_train] ints in [0, num_classes).
    test_features: [num_test, d].
    num_classes: number of classes.
    ks: neighbour counts; each is clipped to num_train.
    temperature: weight of a neighbour is exp(cos_sim / temperature).
    chunk_size: test points per jitted chunk; peak memory ~ chunk_size * num_train floats.

  Returns:
    {k: [num_test] int32 numpy array of predicted classes} for every k of `ks` as given.
  """
  if not ks:
    raise ValueError("ks must not be empty")
  train = l2_normalize(jnp.asarray(train_features, jnp.float32))
  labels = jnp.asarray(train_labels, jnp.int32)
  test = np.asarray(test_features, np.float32)
  num_test = test.shape[0]
  clipped = tuple(sorted({min(int(k), train.shape[0]) for k in ks}))
  if num_test == 0:
    return {int(k): np.zeros((0,), np.int32) for k in ks}
  chunk_size = max(1, min(int(chunk_size), num_test))
  # Pad the last chunk to chunk_size so that a single compilation serves every chunk.
  num_chunks = -(-num_test // chunk_size)
  padded = np.zeros((num_chunks * chunk_size, test.shape[1]), np.float32)
  padded[:num_test] = test
  temperature_array = jnp.asarray(temperature, jnp.float32)
  predictions = [
      _knn_predict_chunk(
          train,
          labels,
          jnp.asarray(padded[start : start + chunk_size]),
          temperature_array,
          ks=clipped,
          num_classes=num_classes,
      )
      for start in range(0, padded.shape[0], chunk_size)
  ]
  by_clipped = np.asarray(jnp.concatenate(predictions, axis=1))[:, :num_test]
  return {int(k): by_clipped[clipped.index(min(int(k), train.shape[0]))] for k in ks}


def knn_predict(
    train_features: jax.typing.ArrayLike,
    train_labels: jax.typing.ArrayLike,
    test_features: jax.typing.ArrayLike,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> np.ndarray:
  """Weighted-kNN predicted class for every test point (see `knn_accuracy`).

  Args:
    train_features: [num_train, d].
    train_labels: [num_train] ints in [0, num_classes).
    test_features: [num_test, d].
    num_classes: number of classes.
    k: neighbours per test point; clipped to num_train.
    temperature: weight of a neighbour is exp(cos_sim / temperature).
    chunk_size: test points per jitted chunk; peak memory ~ chunk_size * num_train floats.

  Returns:
    [num_test] int32 numpy array of predicted classes.
  """
  return knn_sweep_predict(train_features, train_labels, test_features,
                           num_classes=num_classes, ks=(k,), temperature=temperature,
                           chunk_size=chunk_size)[int(k)]


def knn_accuracy(
    train_features: jax.typing.ArrayLike,
    train_labels: jax.typing.ArrayLike,
    test_features: jax.typing.ArrayLike,
    test_labels: jax.typing.ArrayLike,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> float:
  """Top-1 accuracy of a temperature-weighted kNN classifier on frozen features.

  Features are L2-normalised, similarity is cosine. For test point x with top-k train
  neighbours N_k(x):  score_c(x) = sum_{i in N_k(x), y_i = c} exp(cos(x, x_i) / temperature),
  prediction = argmax_c score_c(x). Test points are processed in jitted chunks of
  `chunk_size`, so the [num_test, num_train] similarity matrix is never materialised whole.

  Args:
    train_features: [num_train, d] float array (cast to float32).
    train_labels: [num_train] ints in [0, num_classes).
    test_features: [num_test, d] float array.
    test_labels: [num_test] ints.
    num_classes: number of classes.
    k: neighbours per test point (200 as in Wu et al. / DINO); clipped to num_train.
    temperature: 0.07 as in Wu et al. / DINO.
    chunk_size: test points per chunk.

  Returns:
    Fraction of test points whose prediction equals the label.

  References:
    Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
    CVPR 2018; Caron et al., "Emerging Properties in Self-Supervised Vision Transformers"
    (DINO), ICCV 2021 (eval_knn.py).
  """
  if len(test_labels) == 0:
    raise ValueError("knn_accuracy needs at least one test point")
  predictions = knn_predict(
      train_features,
      train_labels,
      test_features,
      num_classes=num_classes,
      k=k,
      temperature=temperature,
      chunk_size=chunk_size,
  )
  return float(np.mean(predictions == np.asarray(test_labels)))
