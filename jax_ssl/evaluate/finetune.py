"""Full fine-tuning: the pretrained backbone plus a new linear classifier, trained end to end.

The step is jitted over global arrays sharded on the mesh, as in pretraining: light
on-device augmentation (random resized crop + horizontal flip, `jax_ssl.data.augment`),
label-smoothed softmax cross-entropy, AdamW or SGD on a linear-warmup + cosine schedule
(`jax_ssl.optim`), BatchNorm in train mode. Top-1 is measured on the centre view of the
test split, like the frozen-feature protocols.

Layer-wise learning-rate decay (BEiT, MAE): a backbone that defines `num_layers: int` and
`layer_index(path: tuple[str, ...]) -> int` (0 = embeddings, i + 1 = block i,
num_layers + 1 = final norm/head; `path` relative to the backbone, every key a str) has the
learning rate of the parameter at `path` scaled by
`layer_decay ** (num_layers + 1 - layer_index(path))`; the new classifier gets the full
rate. Backbones without `layer_index` (our ResNets) are fine-tuned without it and the
result says so.

References:
  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, App. A.1
  (fine-tuning recipe: AdamW, warmup + cosine, label smoothing 0.1, layer-wise decay).
  Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022 (layer-wise decay).
  Chen et al., "Big Self-Supervised Models are Strong Semi-Supervised Learners" (SimCLRv2),
  NeurIPS 2020 (fine-tuning on 1% and 10% of the labels).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jax_ssl import optim, sharding
from jax_ssl.data import augment, pipeline
from jax_ssl.evaluate.features import extract
from jax_ssl.state import TrainState, create_train_state


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
  """Hyper-parameters of a fine-tuning run (`eval.finetune` in the config).

  Attributes:
    steps: optimizer steps.
    batch_size: global batch size.
    base_learning_rate: peak learning rate at batch 256; the peak is base * batch_size / 256.
    weight_decay: decoupled (AdamW) or L2 (SGD) weight decay; biases and norms excluded.
    warmup_steps: linear warmup from 0, then cosine decay to 0 at `steps`.
    label_smoothing: epsilon of optax.smooth_labels.
    layer_decay: layer-wise lr decay factor in (0, 1]; 1 = none.
    optimizer: "adamw" or "sgd" (momentum 0.9).
    crop_scale: area range of the random resized crop (the view is `output_size` px).
    output_size: side of the views (the pretraining `augment.output_size`).
    crop_fraction: the test images' central crop (`augment.center_view`; `eval.crop_fraction`).
  """

  steps: int
  batch_size: int
  base_learning_rate: float
  weight_decay: float
  warmup_steps: int
  label_smoothing: float
  layer_decay: float
  optimizer: str
  crop_scale: tuple[float, float]
  output_size: int
  crop_fraction: float = 1.0


class Classifier(nnx.Module):
  """backbone -> BatchNorm without affine parameters -> linear classifier (zero-initialised,
  so training starts at chance).

  The parameter-free BatchNorm standardises the features, as MAE's linear-probe head does,
  so the new classifier learns at the backbone's learning rate whatever the feature scale
  (on the Fashion-MNIST SimCLR run, 100 AdamW steps at 1e-3 reached 0.776 top-1 without it);
  at test time it is a fixed affine map, so the head stays linear.
  """

  def __init__(self, backbone: nnx.Module, num_classes: int, *, rngs: nnx.Rngs):
    self.backbone = backbone
    self.head_norm = nnx.BatchNorm(backbone.feature_dim, use_scale=False, use_bias=False,
                                   momentum=0.9, epsilon=1e-6, rngs=rngs)
    self.head = nnx.Linear(backbone.feature_dim, num_classes,
                           kernel_init=nnx.initializers.zeros, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    return self.head(self.head_norm(self.backbone(images)))


def supports_layer_decay(backbone: nnx.Module) -> bool:
  return callable(getattr(backbone, "layer_index", None)) and hasattr(backbone, "num_layers")


def _path_keys(path) -> tuple[str, ...]:
  """A jax key path of an nnx.State leaf -> its keys as strings (the Variable's `.value`
  attribute dropped)."""
  return tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))


def layer_decay_scales(params: nnx.State, backbone: nnx.Module, layer_decay: float
                       ) -> nnx.State:
  """A tree like `params` whose leaves are the lr multiplier of each parameter:
  layer_decay ** (num_layers + 1 - layer_index(path)) under "backbone", 1 elsewhere."""
  top = backbone.num_layers + 1

  def scale(path, _):
    keys = _path_keys(path)
    if keys[0] != "backbone":
      return 1.0
    index = backbone.layer_index(keys[1:])
    if not 0 <= index <= top:
      raise ValueError(f"layer_index{keys[1:]} = {index}; must be in [0, {top}]")
    return float(layer_decay ** (top - index))

  return jax.tree_util.tree_map_with_path(scale, params)


def make_optimizer(params: nnx.State, backbone: nnx.Module, settings: FinetuneSettings
                   ) -> tuple[optax.GradientTransformation, optax.Schedule, bool]:
  """(optimizer, schedule, whether layer-wise decay is applied).

  Layer-wise decay multiplies each parameter's update by its scale (one
  `optax.multi_transform` label per distinct scale): for AdamW and SGD that is the same as
  scaling its learning rate, weight decay included, as timm's and MAE's param groups do.
  """
  peak = optim.scaled_learning_rate(settings.base_learning_rate, settings.batch_size, "linear")
  schedule = optim.warmup_cosine(peak, settings.warmup_steps, settings.steps)
  base = optim.make_optimizer(settings.optimizer, schedule, weight_decay=settings.weight_decay)
  if settings.layer_decay >= 1.0 or not supports_layer_decay(backbone):
    return base, schedule, False
  scales = layer_decay_scales(params, backbone, settings.layer_decay)
  labels = jax.tree.map(lambda s: f"{s!r}", scales)
  transforms = {f"{s!r}": optax.scale(s) for s in set(jax.tree.leaves(scales))}
  return optax.chain(base, optax.multi_transform(transforms, labels)), schedule, True


class Finetuner:
  """Fine-tunes copies of one pretrained backbone (one compilation for every run).

  Args:
    graphdef, params, batch_stats: the pretrained model (an `SSLModel`: its `backbone` is
      used, its heads dropped); left untouched.
    num_classes: classes of the new linear classifier.
    settings: the hyper-parameters.
    mesh: the device mesh; batches are sharded over it, the state replicated.
    image_size: host-side resize of the records (`dataset.image_size`, 0: none).
  """

  def __init__(self, graphdef: nnx.GraphDef, params: nnx.State, batch_stats: nnx.State, *,
               num_classes: int, settings: FinetuneSettings, mesh, image_size: int = 0):
    self.settings, self.mesh, self.image_size = settings, mesh, image_size
    replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    self._graphdef, self._num_classes = graphdef, num_classes
    backbone, graph, initial = self._classifier(params, batch_stats)
    self.backbone_name = type(backbone).__name__
    optimizer, schedule, self.layer_decay_applied = make_optimizer(initial.params, backbone,
                                                                   settings)
    # New buffers with the optimizer state (the trained state is donated at every step;
    # the caller's weights are kept).
    copy = jax.jit(lambda s: jax.tree.map(jnp.copy, s), out_shardings=replicated)
    self._start = lambda state: copy(state.replace(opt_state=optimizer.init(state.params)))
    self._initial = self._start(initial)
    view = augment.AugmentConfig(output_size=settings.output_size, crop_scale=settings.crop_scale,
                                 flip_prob=0.5, jitter_prob=0.0, grayscale_prob=0.0)

    def train_step(state: TrainState, images: jax.Array, labels: jax.Array, rng: jax.Array):
      key = jax.random.fold_in(jax.random.wrap_key_data(rng), state.step)
      views = self._train_views(key, images, view)
      targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes),
                                    settings.label_smoothing)

      def loss_fn(params):
        model = nnx.merge(graph, params, state.batch_stats, copy=True)
        model.train()
        logits = model(views)
        loss = jnp.mean(optax.softmax_cross_entropy(logits, targets))
        return loss, nnx.state(model, nnx.BatchStat)

      (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      new_state = state.replace(step=state.step + 1,
                                params=optax.apply_updates(state.params, updates),
                                batch_stats=batch_stats, opt_state=opt_state)
      return new_state, {"loss": loss, "learning_rate": schedule(state.step)}

    self._train_step = jax.jit(
        train_step, in_shardings=(replicated, batch_sharding, batch_sharding, replicated),
        out_shardings=(replicated, replicated), donate_argnums=(0,))

    def logits(state: TrainState, images: jax.Array) -> jax.Array:
      model = nnx.merge(graph, state.params, state.batch_stats)
      model.eval()
      return self._predict(model, images)

    self._logits = jax.jit(logits, in_shardings=(replicated, batch_sharding),
                           out_shardings=batch_sharding)

  # What a video subclass (evaluate/video_finetune.py) replaces: the training views of a
  # batch's inputs, the test prediction of a batch, the training batches, the test scores.
  def _train_views(self, key: jax.Array, images: jax.Array, view: augment.AugmentConfig
                   ) -> jax.Array:
    """The training views of a batch of images (one random draw per example)."""
    return augment.augment_batch(key, images, view)

  def _predict(self, model: nnx.Module, images: jax.Array) -> jax.Array:
    """The classifier's logits [B, num_classes] on the centre views of `images`."""
    return model(augment.center_view(images, self.settings.output_size,
                                     crop_fraction=self.settings.crop_fraction))

  def _train_iterator(self, train_source, seed: int):
    """This process's training batches {"image", "label"} of `train_source`."""
    return pipeline.train_iterator(
        train_source, local_batch_size=sharding.local_batch_size(self.settings.batch_size),
        seed=seed, process_index=jax.process_index(), process_count=jax.process_count(),
        image_size=self.image_size)

  def _classifier(self, params: nnx.State, batch_stats: nnx.State):
    """(backbone, classifier graph, its TrainState without optimizer state) of a model's
    weights: the backbone of `graphdef` with these weights, a new zero-initialised head."""
    backbone = nnx.merge(self._graphdef, params, batch_stats).backbone
    classifier = Classifier(backbone, self._num_classes, rngs=nnx.Rngs(0))
    graph, initial = create_train_state(classifier, optax.identity(), {})
    return backbone, graph, initial

  def train(self, train_source, *, seed: int, weights: tuple[nnx.State, nnx.State] | None = None
            ) -> tuple[TrainState, list[float]]:
    """Fine-tunes on `train_source` (order and views from `seed`); (state, losses logged
    every 10% of the steps). `weights`: other (params, batch_stats) of the same model to
    start from (e.g. its random initialisation) instead of the pretrained ones; same
    compiled step."""
    settings = self.settings
    state = self._start(self._initial if weights is None else self._classifier(*weights)[2])
    iterator = self._train_iterator(train_source, seed)
    rng = sharding.replicate(jax.random.key_data(jax.random.key(seed)), self.mesh)
    losses = []
    log_every = max(1, settings.steps // 10)
    for step in range(settings.steps):
      batch = sharding.to_global(next(iterator), self.mesh)
      state, metrics = self._train_step(state, batch["image"], batch["label"], rng)
      if (step + 1) % log_every == 0:
        losses.append(float(metrics["loss"]))
    return state, losses

  def accuracy(self, state: TrainState, test_source, *, batch_size: int, limit: int = 0
               ) -> float:
    """Top-1 on the centre views of `test_source` (first `limit` records if > 0)."""
    logits, labels = extract(lambda images: self._logits(state, images), test_source,
                             batch_size=batch_size, limit=limit, mesh=self.mesh,
                             image_size=self.image_size)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))

  def run(self, train_source, test_source, *, seed: int, eval_batch_size: int,
          test_limit: int = 0, weights: tuple[nnx.State, nnx.State] | None = None
          ) -> dict[str, Any]:
    """Fine-tunes on `train_source` (from `weights` if given, see `train`) and scores the
    test split: {"top1", "losses"}."""
    state, losses = self.train(train_source, seed=seed, weights=weights)
    return {"top1": self.accuracy(state, test_source, batch_size=eval_batch_size,
                                  limit=test_limit), "losses": losses}
