"""The attentive probe (eval protocol "attentive"): a learned query cross-attends over the
frozen encoder's patch tokens, then a linear classifier, trained with AdamW on the
training split (I-JEPA, V-JEPA and AIM report it beside the linear probe: masked-prediction
features are rarely linearly separable after mean pooling).

What follows V-JEPA's code (facebookresearch/jepa, src/models/attentive_pooler.py
`AttentiveClassifier` and `AttentivePooler`, src/models/utils/modules.py
`CrossAttentionBlock`, evals/image_classification_frozen/eval.py and its configs):
* one learned query [1, 1, D] (init normal 0.02), one cross-attention block: the query
  attends over LayerNorm(tokens) (q, kv and output projections with biases, the encoder's
  number of heads), a residual, then a residual MLP (4x, exact GELU) on LayerNorm(query);
  the linear classifier reads the query as it leaves the block (no final LayerNorm, as the
  reference). Linear weights normal(0.02), biases 0; the output projection and the MLP's
  second layer divided by sqrt(2) (`_rescale_blocks`); LayerNorm epsilon 1e-5 (torch's).
* AdamW (betas 0.9, 0.999), learning rate 1e-3 on a cosine to 0 without warmup, weight
  decay 1e-3 on a cosine to 1e-6, none on biases and other 1-D parameters, gradients
  clipped to norm 1, cross-entropy without label smoothing.

What changes for a CPU budget (each a setting, `eval.attentive_*`):
* The frozen tokens are computed once, of the centre view (`eval.crop_fraction`), and
  cached on the host in float16; the reference runs the encoder on every step, on
  AutoAugment + random-erasing views. Caching makes a step cost only the probe (a few
  hundred MFLOPs per example instead of the encoder's forward), so many epochs fit, at the
  price of no augmentation. The cache is N x T x D x 2 bytes: Fashion-MNIST's 60000 training
  images with the CPU ViT of experiments/fashion_mnist (49 tokens of width 128) take 753 MB
  (the ResNet's 16 positions of width 512: 983 MB); refused (one line) above
  MAX_CACHE_BYTES.
* 1000 steps of batch 256 (~4 epochs of Fashion-MNIST) instead of 20 epochs of batch 1024;
  float32 instead of bfloat16 autocast.
* ResNets have no heads: feature_dim // 64 of them (ViT-B's 64-wide heads).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jax_ssl import sharding
from jax_ssl.data import pipeline
from jax_ssl.errors import ConfigError
from jax_ssl.evaluate import features

_INIT = nnx.initializers.normal(0.02)  # trunc_normal_(std=0.02) cut at +-2: +-100 std
_LAYER_NORM_EPSILON = 1e-5  # torch's nn.LayerNorm
MAX_CACHE_BYTES = 8 * 2**30  # the training split's cached tokens (host memory, float16)
HEAD_WIDTH = 64  # a ResNet's heads: feature_dim // HEAD_WIDTH


@dataclasses.dataclass(frozen=True)
class AttentiveSettings:
  """The probe and its training (from `eval.attentive_*`; module docstring)."""

  steps: int = 1000
  batch_size: int = 256
  learning_rate: float = 1e-3
  weight_decay: float = 1e-3
  final_weight_decay: float = 1e-6
  num_heads: int = 0  # 0: the encoder's (`default_num_heads`)
  num_queries: int = 1
  mlp_ratio: float = 4.0
  clip_norm: float = 1.0


def _linear(in_features: int, out_features: int, rngs: nnx.Rngs, scale: float = 1.0):
  init = _INIT if scale == 1.0 else (lambda *a: _INIT(*a) * scale)
  return nnx.Linear(in_features, out_features, kernel_init=init, rngs=rngs)


class AttentiveClassifier(nnx.Module):
  """V-JEPA's AttentiveClassifier: [B, T, D] tokens -> [B, num_classes] logits.

  With several queries their outputs are averaged before the classifier (AIM's pooling);
  V-JEPA uses one.
  """

  def __init__(self, dim: int, num_classes: int, *, num_heads: int, num_queries: int = 1,
               mlp_ratio: float = 4.0, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ConfigError(f"eval.attentive_num_heads={num_heads} does not divide the encoder's "
                        f"width {dim}; choose a divisor (0: the encoder's own heads)")
    self.num_heads = num_heads
    self.query = nnx.Param(_INIT(rngs.params(), (1, num_queries, dim)))
    self.norm1 = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, rngs=rngs)
    self.q = _linear(dim, dim, rngs)
    self.kv = _linear(dim, 2 * dim, rngs)
    self.proj = _linear(dim, dim, rngs, scale=1 / math.sqrt(2))
    self.norm2 = nnx.LayerNorm(dim, epsilon=_LAYER_NORM_EPSILON, rngs=rngs)
    hidden = int(dim * mlp_ratio)
    self.fc1 = _linear(dim, hidden, rngs)
    self.fc2 = _linear(hidden, dim, rngs, scale=1 / math.sqrt(2))
    self.classifier = _linear(dim, num_classes, rngs)

  def pool(self, tokens: jax.Array) -> jax.Array:
    """[B, T, D] -> [B, num_queries, D]: CrossAttentionBlock(query, tokens)."""
    batch, length, dim = tokens.shape
    heads, width = self.num_heads, dim // self.num_heads
    query = jnp.broadcast_to(self.query[...], (batch, *self.query.shape[1:]))
    q = self.q(query).reshape(batch, -1, heads, width)
    k, v = jnp.split(self.kv(self.norm1(tokens)).reshape(batch, length, 2 * heads, width), 2,
                     axis=2)
    weights = jax.nn.softmax(jnp.einsum("bqhc,bthc->bhqt", q, k) / math.sqrt(width), axis=-1)
    attended = jnp.einsum("bhqt,bthc->bqhc", weights, v).reshape(batch, -1, dim)
    query = query + self.proj(attended)
    return query + self.fc2(jax.nn.gelu(self.fc1(self.norm2(query)), approximate=False))

  def __call__(self, tokens: jax.Array) -> jax.Array:
    return self.classifier(jnp.mean(self.pool(tokens), axis=1))


def default_num_heads(backbone) -> int:
  """The ViT's own heads (V-JEPA: `num_heads=encoder.num_heads`); for a ResNet,
  feature_dim // HEAD_WIDTH (at least 1)."""
  blocks = getattr(backbone, "blocks", None)
  if hasattr(backbone, "encode_tokens") and blocks:
    return blocks[0].attention.num_heads
  return max(1, backbone.feature_dim // HEAD_WIDTH)


def make_optimizer(settings: AttentiveSettings) -> optax.GradientTransformation:
  """Clip to `clip_norm`, then AdamW: learning rate and weight decay each on a cosine over
  `steps` (to 0 and to `final_weight_decay`), no decay of 1-D parameters (biases, norms)."""
  learning_rate = optax.cosine_decay_schedule(settings.learning_rate, settings.steps)
  decay = settings.final_weight_decay / settings.weight_decay if settings.weight_decay else 0.0
  weight_decay = optax.cosine_decay_schedule(settings.weight_decay, settings.steps, alpha=decay)
  return optax.chain(
      optax.clip_by_global_norm(settings.clip_norm),
      optax.adamw(learning_rate, weight_decay=weight_decay,
                  mask=lambda params: jax.tree.map(lambda p: p.ndim > 1, params)))


def _batch_indices(num_examples: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
  """[steps, batch_size] training rows: shuffled epochs, one after the other."""
  rng = np.random.default_rng(seed)
  needed = steps * batch_size
  order = np.concatenate([rng.permutation(num_examples)
                          for _ in range(-(-needed // num_examples))])
  return order[:needed].reshape(steps, batch_size)


def _local_rows(global_rows: np.ndarray) -> np.ndarray:
  """This process's share of a global batch's rows (as sharding.to_global expects)."""
  share = len(global_rows) // jax.process_count()
  return global_rows[jax.process_index() * share:(jax.process_index() + 1) * share]


def train_and_score(train_tokens: np.ndarray, train_labels: np.ndarray,
                    test_tokens: np.ndarray, test_labels: np.ndarray, *, num_classes: int,
                    num_heads: int, settings: AttentiveSettings, mesh, seed: int = 0
                    ) -> dict[str, Any]:
  """Trains the attentive classifier on the (cached) training tokens; its test top-1.

  Args:
    train_tokens, test_tokens: [n, T, D] and [m, T, D] (float16 or float32, host arrays,
      the same on every process).
    train_labels, test_labels: [n] and [m] ints in [0, num_classes).
    num_classes: number of classes.
    num_heads: the cross-attention's heads (must divide D).
    settings: steps, batch size, optimizer (AttentiveSettings).
    mesh: the device mesh (batches sharded over its data axis, the probe replicated).
    seed: the probe's initialisation and the order of the training batches.

  Returns:
    {"top1": test accuracy, "train_loss": the last step's loss}.
  """
  dim = train_tokens.shape[-1]
  model = AttentiveClassifier(dim, num_classes, num_heads=num_heads,
                              num_queries=settings.num_queries, mlp_ratio=settings.mlp_ratio,
                              rngs=nnx.Rngs(seed))
  graphdef, params = nnx.split(model, nnx.Param)
  optimizer = make_optimizer(settings)
  replicated = sharding.replicated(mesh)
  params = sharding.replicate(params, mesh)
  opt_state = jax.jit(optimizer.init, out_shardings=replicated)(params)

  def loss_fn(params, tokens, labels):
    logits = nnx.merge(graphdef, params)(tokens.astype(jnp.float32))
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

  @jax.jit
  def train_step(params, opt_state, tokens, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens, labels)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def count_correct(params, tokens, labels, valid):
    predictions = jnp.argmax(nnx.merge(graphdef, params)(tokens.astype(jnp.float32)), axis=-1)
    return jnp.sum((predictions == labels) & valid)

  batch_size = -(-settings.batch_size // mesh.size) * mesh.size  # whole rows per device
  loss = jnp.zeros(())
  for rows in _batch_indices(len(train_labels), batch_size, settings.steps, seed):
    local = np.sort(_local_rows(rows))  # sorted: a faster gather from the host cache
    batch = sharding.to_global((train_tokens[local], np.asarray(train_labels[local], np.int32)),
                               mesh)
    params, opt_state, loss = train_step(params, opt_state, *batch)
  correct = 0
  for start in range(0, len(test_labels), batch_size):
    rows = np.arange(start, start + batch_size)
    valid = rows < len(test_labels)
    rows = np.minimum(rows, len(test_labels) - 1)  # padding repeats the last row, not counted
    local = _local_rows(np.stack([rows, valid], axis=1))
    tokens, labels, mask = sharding.to_global(
        (test_tokens[local[:, 0]], np.asarray(test_labels[local[:, 0]], np.int32),
         local[:, 1].astype(bool)), mesh)
    correct += count_correct(params, tokens, labels, mask)
  return {"top1": float(correct) / len(test_labels), "train_loss": float(loss)}


def check_cache_size(num_examples: int, tokens_shape: tuple[int, ...]) -> int:
  """The bytes of the cached float16 tokens of `num_examples` examples ([T, D] each).

  Raises:
    ConfigError: over MAX_CACHE_BYTES, naming the eval.train_limit that fits.
  """
  per_example = 2 * int(np.prod(tokens_shape))
  total = num_examples * per_example
  if total > MAX_CACHE_BYTES:
    raise ConfigError(
        f"eval.protocols 'attentive' caches the frozen tokens of the training split on the "
        f"host: {num_examples} x {tuple(tokens_shape)} float16 = {total / 2**30:.1f} GiB, over "
        f"the {MAX_CACHE_BYTES / 2**30:.0f} GiB limit; set eval.train_limit to at most "
        f"{MAX_CACHE_BYTES // per_example}")
  return total


def evaluate(data, token_fn, mesh, *, num_heads: int, settings: AttentiveSettings, seed: int
             ) -> dict[str, Any]:
  """The attentive protocol on one encoder: the tokens of both splits cached (float16, on
  the host), the probe trained and scored. `data`: run.EvalData (sources, limits, batch
  size, image size, classes); `token_fn(images)`: the jitted frozen encoder's patch tokens
  (features.make_token_fn) of a global batch.

  Returns:
    {"attentive_top1", "attentive_train_loss" (its last step's), "attentive_cache_mb" (the
    training tokens' cache), "attentive_seconds"}.

  Raises:
    ConfigError: before any token is extracted, if the cache would exceed MAX_CACHE_BYTES.
  """
  start = time.perf_counter()
  first, _ = next(pipeline.eval_batches(features.Subset(data.sources["train"], [0]),
                                        batch_size=1, image_size=data.image_size))
  shape = jax.eval_shape(token_fn, jax.ShapeDtypeStruct(
      (data.batch_size, *first["image"].shape[1:]), first["image"].dtype)).shape
  cache = check_cache_size(data.example_counts()["train"][0], shape[1:])
  (train_tokens, train_labels), (test_tokens, test_labels) = (
      features.extract(token_fn, data.sources[split], batch_size=data.batch_size,
                       limit=data.limits[split], mesh=mesh, image_size=data.image_size,
                       dtype=np.float16) for split in ("train", "test"))
  scores = train_and_score(train_tokens, train_labels, test_tokens, test_labels,
                           num_classes=data.num_classes, num_heads=num_heads,
                           settings=settings, mesh=mesh, seed=seed)
  return {"attentive_top1": scores["top1"], "attentive_train_loss": scores["train_loss"],
          "attentive_cache_mb": round(cache / 2**20, 1),
          "attentive_seconds": round(time.perf_counter() - start, 1)}
