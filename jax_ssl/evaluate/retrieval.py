"""Nearest-neighbour retrieval Recall@k on frozen features: a pure function on arrays (no
config).

The video retrieval protocol of RSPNet (PeihaoChen/RSPNet retrieval.py `topk_retrieval`,
after Xu et al.'s VCOP and Luo et al.'s VCP): every test clip queries the training clips by
cosine similarity of their features, and counts as a hit at k if any of its k nearest
training clips has its class; Recall@k is the fraction of test clips hit. The reference
ranks by `sklearn.metrics.pairwise.cosine_distances` and `np.argsort` (quicksort: ties in
any order); here equal similarities rank the lower training index first (`jax.lax.top_k`),
so results are deterministic.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl.losses import l2_normalize

RETRIEVAL_KS = (1, 5, 10)  # RSPNet's table reports R@1, 5, 10 (its code also 20, 50)


def recall_key(k: int) -> str:
  """The results.json name of Recall@k: 'retrieval_recall@1'."""
  return f"retrieval_recall@{k}"


@functools.partial(jax.jit, static_argnames=("k",))
def _hits_chunk(train_normalised: jax.Array, train_labels: jax.Array, test_chunk: jax.Array,
                test_labels: jax.Array, *, k: int) -> jax.Array:
  """[chunk, k] bool: whether the j-th nearest training row (cosine, ties to the lower
  index) of each test row has the test row's label."""
  similarity = l2_normalize(test_chunk) @ train_normalised.T  # [chunk, num_train]
  _, nearest = jax.lax.top_k(similarity, k)  # [chunk, k], most similar first
  return train_labels[nearest] == test_labels[:, None]


def retrieval_recall(
    train_features: jax.typing.ArrayLike,
    train_labels: jax.typing.ArrayLike,
    test_features: jax.typing.ArrayLike,
    test_labels: jax.typing.ArrayLike,
    *,
    ks: Sequence[int] = RETRIEVAL_KS,
    chunk_size: int = 1024,
) -> dict[str, float]:
  """Recall@k of test queries against the training set (module docstring).

  Args:
    train_features: [num_train, d] (the gallery).
    train_labels: [num_train] ints.
    test_features: [num_test, d] (the queries), num_test >= 1.
    test_labels: [num_test] ints.
    ks: the k values; each is clipped to num_train.
    chunk_size: queries per jitted chunk (peak memory ~ chunk_size * num_train floats).

  Returns:
    {"retrieval_recall@<k>": fraction of queries with a same-class training row among
    their k nearest, for every k of `ks`}.
  """
  test = np.asarray(test_features, np.float32)
  labels = np.asarray(test_labels, np.int32)
  if test.shape[0] == 0:
    raise ValueError("retrieval_recall needs at least one test query")
  train = l2_normalize(jnp.asarray(train_features, jnp.float32))
  gallery_labels = jnp.asarray(train_labels, jnp.int32)
  k_max = min(max(int(k) for k in ks), train.shape[0])
  chunk_size = max(1, min(int(chunk_size), test.shape[0]))
  num_chunks = -(-test.shape[0] // chunk_size)
  # The last chunk padded so that one compilation serves every chunk (as knn.py).
  padded = np.zeros((num_chunks * chunk_size, test.shape[1]), np.float32)
  padded[:test.shape[0]] = test
  padded_labels = np.zeros((num_chunks * chunk_size,), np.int32)
  padded_labels[:labels.shape[0]] = labels
  hits = np.concatenate([
      np.asarray(_hits_chunk(train, gallery_labels, jnp.asarray(padded[s:s + chunk_size]),
                             jnp.asarray(padded_labels[s:s + chunk_size]), k=k_max))
      for s in range(0, padded.shape[0], chunk_size)])[:test.shape[0]]  # [num_test, k_max]
  # A hit at k: any of the first k neighbours has the query's class.
  return {recall_key(k): float(np.mean(np.any(hits[:, :min(int(k), k_max)], axis=1)))
          for k in ks}
