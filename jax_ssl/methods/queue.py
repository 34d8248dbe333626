"""A first-in-first-out memory of embeddings in the method state (MoCo's negatives, NNCLR's
support set), written once per optimizer step from the global batch.

The queue is a replicated [K, D] array plus a write pointer; `enqueue` writes the rows of
the global batch at the pointer (wrapping around) so every device holds the same queue and
Orbax saves and restores it with the rest of the train state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.config.typed import check


def check_size(queue_size: int) -> None:
  """The one-line refusal of a `method_args.queue_size` that holds no row."""
  check(queue_size >= 1,
        f"method_args.queue_size={queue_size!r}; need an integer >= 1 (the rows of the queue)")


def init(size: int, dim: int, seed: int = 0) -> dict[str, jax.Array]:
  """{"embeddings": [size, dim] random unit rows (as MoCo initialises it), "pointer": 0}."""
  rows = jax.random.normal(jax.random.key(seed), (size, dim), jnp.float32)
  return {"embeddings": losses.l2_normalize(rows), "pointer": jnp.zeros((), jnp.int32)}


def enqueue(queue: dict[str, jax.Array], rows: jax.Array) -> dict[str, Any]:
  """Writes the L2-normalised [N, D] `rows` at the pointer (modulo the size), oldest first out."""
  size = queue["embeddings"].shape[0]
  rows = losses.l2_normalize(jax.lax.stop_gradient(rows.astype(jnp.float32)))
  if rows.shape[0] > size:  # only the newest `size` rows survive a lap
    rows = rows[-size:]
  index = (queue["pointer"] + jnp.arange(rows.shape[0])) % size
  return {"embeddings": queue["embeddings"].at[index].set(rows),
          "pointer": (queue["pointer"] + rows.shape[0]) % size}
