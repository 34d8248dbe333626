"""Collapse diagnostics of embeddings, for every method: RankMe and the per-dimension std of
the L2-normalised embeddings, with a one-line warning when they show a collapse.

* `collapse_metrics(embeddings)`: the pure metrics of an [n, d] matrix (jnp, jit-able, also
  on a batch sharded over devices: XLA gathers it for the SVD).
* `evaluation_diagnostics(features)`: the metrics of the evaluation's test features
  (results.json's "diagnostics"; jax_ssl/evaluate/run.py).
* `TrainDiagnostics`: every `diagnostics_every_steps` steps of the trainer, the metrics of the
  backbone features (eval mode) of the current batch's first view: one extra jitted forward
  on the batch already on the devices, dispatched asynchronously and read at the next log
  step (so no step in between waits for the device), logged as `diagnostics/<name>`.

What counts as collapsed (`collapse_warning`):
* RankMe below max(RANKME_FLOOR, RANKME_FRACTION * min(n, d)). RankMe's collapsed runs
  (Garrido et al. 2023, Fig. 1 and Sec. 4: complete collapse) sit at rank ~1, and their
  dimensionally collapsed ones at a few percent of the dimension, with downstream accuracy
  falling sharply below that; a floor of 2 is "all embeddings on one line", 1% of
  min(n, d) the dimensional collapse of a wide embedding (20 of ResNet-50's 2048).
* embedding_std * sqrt(d) below STD_FLOOR = 0.1: SimSiam (Chen & He 2021, Fig. 2) reads a
  collapse from this std, which goes to 0 when the embeddings collapse to a point and is
  ~1 / sqrt(d) for embeddings spread over the sphere; 0.1 is ten times below healthy.

References:
  Garrido, Balestriero, Najman & LeCun, "RankMe: Assessing the downstream performance of
  pretrained self-supervised representations by their rank", ICML 2023 (Eq. 1, eps = 1e-7).
  Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021, Sec. 4.1.
"""

from __future__ import annotations

import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

RANKME_EPSILON = 1e-7  # RankMe's eps, added to every normalised singular value
RANKME_FLOOR = 2.0
RANKME_FRACTION = 0.01
STD_FLOOR = 0.1
# At most this many rows of the evaluation features: the 25,600 embeddings RankMe uses.
EVALUATION_ROWS = 25_600
PREFIX = "diagnostics/"  # of the trainer's metric names


def rankme(embeddings: jax.typing.ArrayLike, epsilon: float = RANKME_EPSILON) -> jax.Array:
  """RankMe: exp(-sum_k p_k log p_k), p_k = sigma_k / sum_j sigma_j + epsilon.

  Args:
    embeddings: [n, d] (any float dtype; computed in float32).
    epsilon: RankMe's eps (1e-7 in the paper).

  Returns:
    float32 scalar in [~1, min(n, d)]: 1 when the rows lie on one line, min(n, d) when every
    singular value is the same (an orthogonal matrix, up to scale).
  """
  singular_values = jnp.linalg.svd(jnp.asarray(embeddings, jnp.float32), compute_uv=False)
  p = singular_values / jnp.maximum(jnp.sum(singular_values), jnp.finfo(jnp.float32).tiny)
  p = p + epsilon
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


def normalized_std(embeddings: jax.typing.ArrayLike) -> jax.Array:
  """SimSiam's collapse monitor: the std over the n rows of each dimension of the
  L2-normalised rows, averaged over the d dimensions. 0 when every row is the same
  direction; ~1 / sqrt(d) for rows spread over the sphere (isotropic Gaussian rows).

  [n, d] -> float32 scalar.
  """
  x = jnp.asarray(embeddings, jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  return jnp.mean(jnp.std(x, axis=0))


def collapse_metrics(embeddings: jax.typing.ArrayLike) -> dict[str, jax.Array]:
  """The collapse metrics of [n, d] embeddings (float32 scalars):

  rankme: `rankme`; rankme_fraction: rankme / min(n, d) (1: the full rank);
  embedding_std: `normalized_std`; embedding_std_scaled: embedding_std * sqrt(d) (~1:
  healthy, 0: collapsed to a point).
  """
  n, d = jnp.shape(embeddings)
  rank = rankme(embeddings)
  std = normalized_std(embeddings)
  return {"rankme": rank, "rankme_fraction": rank / min(n, d), "embedding_std": std,
          "embedding_std_scaled": std * np.sqrt(d).astype(np.float32)}


def collapse_warning(metrics: dict[str, float], where: str) -> str | None:
  """The warning line if `metrics` (collapse_metrics as floats) show a collapse, else None.

  `where` names the embeddings (e.g. "step 500, training batch")."""
  rank, fraction = metrics["rankme"], metrics["rankme_fraction"]
  reasons = []
  # rank < RANKME_FRACTION * min(n, d) is fraction < RANKME_FRACTION; `not >=`: NaN collapses
  if not (rank >= RANKME_FLOOR and fraction >= RANKME_FRACTION):
    reasons.append(f"rankme {rank:.3g} ({fraction:.2%} of min(examples, dim)) is below "
                   f"max({RANKME_FLOOR:g}, {RANKME_FRACTION:.0%} of min(examples, dim))")
  if not metrics["embedding_std_scaled"] >= STD_FLOOR:
    reasons.append(f"std of the normalised embeddings x sqrt(dim) "
                   f"{metrics['embedding_std_scaled']:.3g} < {STD_FLOOR:g} (healthy ~1)")
  if not reasons:
    return None
  return (f"representation collapse at {where}: {'; '.join(reasons)}. The encoder maps "
          f"different images to (nearly) the same features; lower the learning rate, or check "
          f"the method's anti-collapse terms (temperature, predictor, centering, variance)")


def warn_if_collapsed(metrics: dict[str, float], where: str) -> bool:
  """Logs `collapse_warning` (one line, absl's logger: the trainer's) if there is one."""
  line = collapse_warning(metrics, where)
  if line is not None:
    logging.warning("%s", line)
  return line is not None


def evaluation_diagnostics(features: np.ndarray, warn: bool = True) -> dict[str, float]:
  """collapse_metrics of the first EVALUATION_ROWS rows of the evaluation `features` [n, d]
  (the test split's), as floats, with "examples" (rows used) and "dim"; with `warn`, warns if
  collapsed (the baselines' are recorded without a warning)."""
  rows = np.asarray(features[:EVALUATION_ROWS], np.float32)
  values = {k: float(v) for k, v in jax.device_get(collapse_metrics(rows)).items()}
  if warn:
    warn_if_collapsed(values, "the evaluation (test-split features)")
  return {**values, "examples": int(rows.shape[0]), "dim": int(rows.shape[1])}


def below_random_init(values: dict[str, float], random_init: dict[str, float]) -> str | None:
  """The warning line if the trained encoder's RankMe is below its own random
  initialisation's (both evaluation_diagnostics of the test split), else None.

  A fixed threshold cannot tell this: a random-init ViT's mean-pooled tokens already sit at
  a few percent of the dimension (3.1% for experiments/fashion_mnist/ijepa.py's ViT, 8.2% for
  the SimCLR default's CNN, on 1000 test images), so an encoder that trained into a
  dimensional collapse can stay above RANKME_FRACTION while having lost rank to its start."""
  if not values["rankme"] < random_init["rankme"]:
    return None
  return (f"representation collapse at the evaluation: rankme {values['rankme']:.3g} of the "
          f"trained encoder is below its random initialisation's {random_init['rankme']:.3g}: "
          f"training narrowed the features to fewer directions than it started with; lower "
          f"the learning rate, or raise the EMA momentum / the method's anti-collapse terms")


def warn_if_below_random_init(values: dict[str, float], random_init: dict[str, float]) -> bool:
  """Logs `below_random_init` (one line, absl's logger) if there is one."""
  line = below_random_init(values, random_init)
  if line is not None:
    logging.warning("%s", line)
  return line is not None


def describe(values: dict[str, Any]) -> str:
  """One line for the console and the report: the evaluation diagnostics."""
  return (f"collapse diagnostics of {values['examples']} test features: rankme "
          f"{values['rankme']:.2f} of {min(values['examples'], values['dim'])} "
          f"({values['rankme_fraction']:.1%}), std of the normalised features x sqrt(dim) "
          f"{values['embedding_std_scaled']:.3f} (healthy ~1, collapsed 0)")


class TrainDiagnostics:
  """The trainer's collapse diagnostics every `every_steps` steps (0: never).

  `after_step` dispatches the jitted metrics of the backbone features (eval mode; the
  encoder `eval.encoder` names, as the evaluation) of the step's first view, made exactly as
  the step made it (augment.views_of_batch with the step's key), and returns at once; `read`
  fetches the latest ones at a log step (the host's only wait for them), warns once per
  reading if they show a collapse, and returns them as `diagnostics/<name>` metrics.
  """

  def __init__(self, graphdef, view_config, *, every_steps: int, encoder: str = "online"):
    from jax_ssl.data import augment  # pylint: disable=g-import-not-at-top
    from jax_ssl.state import encoder_weights  # pylint: disable=g-import-not-at-top
    from jax_ssl.step import make_feature_fn  # pylint: disable=g-import-not-at-top
    self.every_steps = every_steps
    self._pending: tuple[int, dict[str, jax.Array]] | None = None
    features = make_feature_fn(graphdef)

    def metrics(state, inputs, rng):
      # The key of the step that made `state` (step.py: fold_in(rng, step before it)); view 0
      # uses fold_in(key, 0) whatever the number of views, so one config makes it.
      key = jax.random.fold_in(jax.random.wrap_key_data(rng), state.step - 1)
      if "clips" in inputs:
        first = {"clips": inputs["clips"][:1]}
      elif "views" in inputs:
        first = {"views": inputs["views"][:1]}
      else:
        first = {"image": inputs["image"]}
      view = augment.views_of_batch(key, first, [view_config])[0]
      return collapse_metrics(features(*encoder_weights(state, encoder), view))

    self._metrics = jax.jit(metrics)

  def after_step(self, step: int, state, inputs, rng) -> float:
    """Dispatches the metrics if `step` is a diagnostics step; returns the host seconds it
    took (the first time, the compilation)."""
    if not self.every_steps or step % self.every_steps:
      return 0.0
    start = time.perf_counter()
    self._pending = (step, self._metrics(state, inputs, rng))
    return time.perf_counter() - start

  def read(self) -> dict[str, float]:
    """The latest pending metrics as {"diagnostics/<name>": float} ({} if none)."""
    if self._pending is None:
      return {}
    step, pending = self._pending
    self._pending = None
    values = {k: float(v) for k, v in jax.device_get(pending).items()}
    warn_if_collapsed(values, f"step {step} (backbone features of the training batch's first "
                              f"view)")
    return {PREFIX + k: v for k, v in values.items()}
