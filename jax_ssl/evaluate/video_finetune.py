"""Fine-tuning a video encoder: finetune.Finetuner on clips, once per label key.

Training (the `eval.finetune` recipe of images): one clip per video at a uniform random
start (`video_eval.finetune_clip_iterator`), one random crop and flip per clip applied to
all its frames (`video_augment.augment_clip_batch`), the backbone plus a new linear
classifier trained end to end, as RSPNet's and SlowFast's fine-tuning sample one clip per
video and step.

Test: SlowFast's multi-view test (facebookresearch/SlowFast slowfast/utils/meters.py
`TestMeter`, ensemble_method "sum"): each test video's `eval.num_clips` evenly spaced clips,
centre views, the classifier's softmax probabilities summed (here averaged: the same argmax)
over the clips; the video's prediction is their argmax. One clip is the single-view test.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl import config as config_lib
from jax_ssl import sharding
from jax_ssl.config.schema import Experiment
from jax_ssl.data import augment, video_augment, video_eval
from jax_ssl.evaluate import finetune, protocols, run, video
from jax_ssl.evaluate.features import Subset
from jax_ssl.state import encoder_weights


class VideoFinetuner(finetune.Finetuner):
  """finetune.Finetuner on clips: the classifier learns `label_key` of the records.

  Args (beyond finetune.Finetuner's):
    num_frames, stride: each clip's frames and frame step (the pretraining's `clips.*`).
    num_clips: clips per test video whose predictions are averaged.
    label_key: the record key the classifier learns.
  """

  def __init__(self, graphdef: nnx.GraphDef, params: nnx.State, batch_stats: nnx.State, *,
               num_classes: int, settings: finetune.FinetuneSettings, mesh, num_frames: int,
               stride: int, num_clips: int, label_key: str = video.DEFAULT_LABEL):
    self.clip_args = dict(num_frames=num_frames, stride=stride, num_clips=num_clips)
    self.label_key = label_key
    super().__init__(graphdef, params, batch_stats, num_classes=num_classes,
                     settings=settings, mesh=mesh)

  def _train_views(self, key: jax.Array, clips: jax.Array, view: augment.AugmentConfig
                   ) -> jax.Array:
    """One crop / flip draw per clip [B, T, H, W, C], shared by its frames."""
    return video_augment.augment_clip_batch(key, clips, view)

  def _predict(self, model: nnx.Module, clips: jax.Array) -> jax.Array:
    """clips [B, K, T, H, W, C] -> the softmax probabilities averaged over the K clips'
    centre views, [B, num_classes] (SlowFast's multi-view ensemble)."""
    def probabilities(flat):
      views = video_augment.center_clip_view(flat, self.settings.output_size,
                                             crop_fraction=self.settings.crop_fraction)
      return jax.nn.softmax(model(views).astype(jnp.float32), axis=-1)
    return video.average_over_clips(probabilities, clips)

  def _train_iterator(self, train_source, seed: int):
    return video_eval.finetune_clip_iterator(
        train_source, local_batch_size=sharding.local_batch_size(self.settings.batch_size),
        seed=seed, process_index=jax.process_index(), process_count=jax.process_count(),
        num_frames=self.clip_args["num_frames"], stride=self.clip_args["stride"],
        label_key=self.label_key)

  def accuracy(self, state, test_source, *, batch_size: int, limit: int = 0) -> float:
    """Top-1 of the multi-clip predictions on the videos of `test_source` (first `limit`
    if > 0)."""
    probabilities, labels = video.extract_clip_features(
        lambda clips: self._logits(state, clips), test_source, batch_size=batch_size,
        limit=limit, mesh=self.mesh, label_keys=(self.label_key,), **self.clip_args)
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels[self.label_key]))


def finetune_protocols(config: Experiment, data: video.VideoEvalData, graphdef, state, mesh,
                       chosen: protocols.Protocols,
                       train_labels: dict[str, np.ndarray] | None,
                       init_weights: tuple[Any, Any] | None
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
  """run._finetune_protocols for videos, once per label key (results `label_prefixed`):
  (results, random-init baseline) with finetune_top1 and, with low-label percentages and
  `eval.finetune.low_label`, finetune_<P>pct_top1 on the same class-balanced subsets as the
  linear probe's; the same runs from `init_weights` if given."""
  start = time.perf_counter()
  settings = run.finetune_settings(config)
  params, batch_stats = encoder_weights(state, config_lib.evaluation_encoder(config))
  train_source = data.sources["train"]
  if data.limits["train"]:
    train_source = Subset(train_source, np.arange(min(data.limits["train"], len(train_source))))
  percents = chosen.low_label_percents if config.eval.finetune.low_label else ()
  if percents and train_labels is None:  # the labels only: no clips decoded
    train_labels = {key: np.asarray([int(train_source[i][key]) for i in range(len(train_source))])
                    for key in data.label_keys}
  results: dict[str, Any] = {}
  baseline: dict[str, Any] = {}
  tuner = None
  for key in data.label_keys:
    tuner = VideoFinetuner(graphdef, params, batch_stats, num_classes=data.num_classes[key],
                           settings=settings, mesh=mesh, label_key=key, **data.clip_args)

    def scores(weights, tuner=tuner, key=key) -> dict[str, Any]:
      run_once = lambda source, seed: tuner.run(
          source, data.sources["test"], seed=seed, eval_batch_size=data.batch_size,
          test_limit=data.limits["test"], weights=weights)["top1"]
      out: dict[str, Any] = {"finetune_top1": run_once(train_source, config.seed)}
      for percent in percents:
        subsets = protocols.low_label_subsets(train_labels[key], percent,
                                              num_classes=data.num_classes[key],
                                              seeds=config.eval.low_label_seeds)
        per_seed = [run_once(Subset(train_source, subset), seed)
                    for subset, seed in zip(subsets, config.eval.low_label_seeds)]
        out.update(protocols.low_label_results("finetune", percent, per_seed))
      return out

    results.update(video.label_prefixed(scores(None), key))
    if init_weights is not None:
      baseline.update(video.label_prefixed(scores(init_weights), key))
  results["finetune_layer_decay"] = settings.layer_decay if tuner.layer_decay_applied else None
  results["finetune_note"] = (
      f"{settings.steps} steps of batch {settings.batch_size} clips (one random clip per "
      f"video), {settings.optimizer}, peak lr {settings.base_learning_rate:g} x batch/256, "
      f"weight decay {settings.weight_decay:g}, label smoothing {settings.label_smoothing:g}, "
      f"crop scale {settings.crop_scale}, test: softmax averaged over "
      f"{data.clip_args['num_clips']} clip(s) per video"
      + (f", layer-wise lr decay {settings.layer_decay:g}" if tuner.layer_decay_applied else ""))
  results["finetune_seconds"] = round(time.perf_counter() - start, 1)
  return results, baseline
