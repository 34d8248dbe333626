"""Evaluation of a video encoder: the image protocols on clip-averaged features, once per
label key, plus retrieval, baselines, results.json and the report.

`run.evaluate` hands a video dataset (`pipeline.is_video`) to `evaluate` here, so the
trainer's end-of-run evaluation and `python -m jax_ssl.evaluate` take the same path.

Features of a video: its `eval.num_clips` clips of `clips.num_frames` frames every
`clips.stride` frames, evenly spaced (`data/video_eval.py`), each through the backbone on
its centre view (`video_augment.center_clip_view`, every frame as `augment.center_view`
transforms an image), then averaged over the clips: the *clip-averaged features*. This is
RSPNet's retrieval and linear evaluation (retrieval.py `Engine.average_clips`: 10 clips per
video, the pooled backbone features averaged, PeihaoChen/RSPNet) and the feature-level form
of SlowFast's multi-view test (facebookresearch/SlowFast slowfast/utils/meters.py
`TestMeter`, which sums the clips' softmax predictions per video: what fine-tuning does
here, video_finetune.py). Both splits get the same clips: the reference extracts its
training gallery with the same number of clips.

Labels: every protocol (knn, linear, lowlabel, finetune, retrieval) runs once per key of
`eval.label_keys`; the dataset's "label" keeps the image names (`knn_top1`, ...), another
key K is reported as "K/<name>" (`label_prefixed`): on Moving Fashion-MNIST `knn_top1` is
the garment and `motion/knn_top1` the motion class, so a table shows what a method learned.

Baselines (`eval.baselines`), as for images: the randomly initialised encoder through the
same path, and raw pixels: each clip's centre view at `eval.raw_pixel_size` pixels
(anti-aliased bilinear), its frames resampled to `eval.raw_pixel_frames` (anti-aliased
linear interpolation in time: averages of neighbouring frames), flattened and averaged over
the clips. The downsampling keeps the pixels' dimension near the images' (16 x 16 x 4 = 1024
for a grey clip vs 784 for Fashion-MNIST): the linear probe's preconditioner is a d x d
eigendecomposition, out of reach at 16 x 64 x 64 = 65536.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from jax_ssl import config as config_lib
from jax_ssl import diagnostics, sharding
from jax_ssl.config import data_checks
from jax_ssl.config.schema import Experiment
from jax_ssl.data import pipeline, video_augment, video_eval
from jax_ssl.errors import ConfigError, DataError
from jax_ssl.evaluate import host, knn, protocols, report, run
from jax_ssl.evaluate.features import Subset
from jax_ssl.state import encoder_weights, split_model
from jax_ssl.step import make_feature_fn

DEFAULT_LABEL = "label"  # the dataset's main label: its results keep the image names


def label_prefixed(scores: dict[str, Any], label_key: str) -> dict[str, Any]:
  """`scores` under the names of label key `label_key`: unchanged for "label", "K/<name>"
  for another key K (report.split_label_kind reads them back)."""
  if label_key == DEFAULT_LABEL:
    return dict(scores)
  return {f"{label_key}/{name}": value for name, value in scores.items()}


def average_over_clips(feature_fn, clips: jax.Array) -> jax.Array:
  """The clip-averaged features of videos: clips [B, K, T, H, W, C] -> [B, D], the mean over
  the K clips of `feature_fn` ([B * K, T, H, W, C] -> [B * K, D])."""
  batch, num_clips = clips.shape[:2]
  features = feature_fn(clips.reshape(batch * num_clips, *clips.shape[2:]))
  return features.reshape(batch, num_clips, -1).mean(axis=1)


def make_clip_encoder(graphdef, mesh, output_size: int, crop_fraction: float = 1.0):
  """`encoder(params, batch_stats)` -> a jitted `clips [B, K, T, H, W, C] -> clip-averaged
  backbone features [B, D]` on the centre views (run.make_encoder for videos; one
  compilation serves the trained and the random-init weights)."""
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  features = make_feature_fn(graphdef)

  def encode(params, batch_stats, clips):
    def centre_features(flat):  # [B * K, T, H, W, C] -> [B * K, D]
      views = video_augment.center_clip_view(flat, output_size, crop_fraction=crop_fraction)
      return features(params, batch_stats, views)
    return average_over_clips(centre_features, clips)

  encode = jax.jit(encode, in_shardings=(replicated, replicated, batch_sharding),
                   out_shardings=batch_sharding)
  gather = jax.jit(lambda weights: weights, out_shardings=replicated)  # as run.make_encoder

  def bind(params, batch_stats):
    params, batch_stats = gather((params, batch_stats))
    return lambda clips: encode(params, batch_stats, clips)

  return bind


def raw_pixel_features(clips: jax.Array, *, size: int, frames: int,
                       crop_fraction: float = 1.0) -> jax.Array:
  """The raw-pixel baseline's features (module docstring): clips [B, K, T, H, W, C] ->
  float32 [B, min(frames, T) * size * size * C], averaged over the K clips."""

  def pixels(flat):  # [B * K, T, H, W, C]
    views = video_augment.center_clip_view(flat, size, crop_fraction=crop_fraction)
    count, num_frames, _, _, channels = views.shape
    if frames < num_frames:
      views = jax.image.resize(views, (count, frames, size, size, channels), method="linear",
                               antialias=True)
    return views.reshape(count, -1)

  return average_over_clips(pixels, clips)


def extract_clip_features(feature_fn, source, *, batch_size: int, limit: int, mesh,
                          num_frames: int, stride: int, num_clips: int,
                          label_keys: Sequence[str] = (DEFAULT_LABEL,)
                          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """features.extract for videos: (`feature_fn` of every video's clips [n, D], {label key:
  [n] labels}) over `source` (its first `limit` videos if > 0), batch by batch
  (`video_eval.eval_clip_batches`); `feature_fn(clips [B, K, T, H, W, C])` runs on a global
  batch sharded over the mesh, and every process gets the whole result."""
  if limit:
    source = Subset(source, np.arange(min(limit, len(source))))
  features, labels = [], {key: [] for key in label_keys}
  for batch, num_valid in video_eval.eval_clip_batches(
      source, batch_size=batch_size // jax.process_count(), num_frames=num_frames,
      stride=stride, num_clips=num_clips, process_index=jax.process_index(),
      process_count=jax.process_count(), label_keys=label_keys):
    batch = sharding.to_global(batch, mesh)
    out = feature_fn(batch["image"])
    out, batch_labels = multihost_utils.process_allgather(
        (out, {key: batch[key] for key in label_keys}), tiled=True)
    features.append(np.asarray(out[:num_valid], np.float32))
    for key in label_keys:
      labels[key].append(np.asarray(batch_labels[key][:num_valid]))
  return np.concatenate(features), {key: np.concatenate(v) for key, v in labels.items()}


class VideoEvalData:
  """The labelled video dataset of a config (run.EvalData for videos): info, each label
  key's class count and names, the train/test sources and the evaluation clips."""

  def __init__(self, config: Experiment):
    data, ev = config.dataset, config.eval
    self.info = pipeline.dataset_info(data.name, data_dir=data.data_dir)
    data_checks.refuse_unevaluable(config, self.info)  # < 2 classes, no test split: one line
    self.label_keys = tuple(ev.label_keys)
    missing = [k for k in self.label_keys if k not in self.info.features
               or not hasattr(self.info.features[k], "num_classes")]
    if missing:
      labels = sorted(k for k, f in self.info.features.items() if hasattr(f, "num_classes"))
      raise DataError(f"eval.label_keys={self.label_keys}: dataset {data.name!r} has no class "
                      f"label {missing[0]!r} (its labels: {labels}); set "
                      f"--config.eval.label_keys to some of them")
    self.num_classes = {k: self.info.features[k].num_classes for k in self.label_keys}
    self.class_names = {k: list(self.info.features[k].names) for k in self.label_keys}
    self.in_channels = pipeline.video_shape(self.info)[-1]
    self.sources = {
        "train": pipeline.load_source(data.name, data.train_split, data_dir=data.data_dir),
        "test": pipeline.load_source(data.name, data.test_split, data_dir=data.data_dir)}
    self.limits = {"train": ev.train_limit, "test": ev.test_limit}
    # Every global batch (of videos) splits evenly over the devices.
    self.batch_size = -(-ev.batch_size // jax.device_count()) * jax.device_count()
    self.clip_args = dict(num_frames=config.clips.num_frames, stride=config.clips.stride,
                          num_clips=ev.num_clips)

  def example_counts(self) -> dict[str, list[int]]:
    """{split: [videos evaluated (eval.*_limit applied), videos in the split]}."""
    return {split: [min(self.limits[split] or len(source), len(source)), len(source)]
            for split, source in self.sources.items()}

  def features(self, feature_fn, split: str, mesh) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return extract_clip_features(feature_fn, self.sources[split], batch_size=self.batch_size,
                                 limit=self.limits[split], mesh=mesh,
                                 label_keys=self.label_keys, **self.clip_args)


def frozen_protocols_by_label(train: tuple[np.ndarray, dict[str, np.ndarray]],
                              test: tuple[np.ndarray, dict[str, np.ndarray]],
                              chosen: protocols.Protocols, num_classes: dict[str, int],
                              **feature_args) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """protocols.frozen_feature_protocols once per label key of `num_classes` on the same
  features: (the results of every key, `label_prefixed`; {key: kNN predictions at knn_k}
  for the keys kNN ran on)."""
  results, predictions = {}, {}
  for key, classes in num_classes.items():
    scores, knn_predictions = protocols.frozen_feature_protocols(
        train[0], train[1][key], test[0], test[1][key], chosen, num_classes=classes,
        **feature_args)
    results.update(label_prefixed(scores, key))
    if knn_predictions is not None:
      predictions[key] = knn_predictions
  return results, predictions


def _random_init_weights(config: Experiment, data: VideoEvalData) -> tuple[Any, Any]:
  """(params, batch stats) of the run's model at initialisation (the same seed), for the
  random-init baselines; built as the trainer builds it (num_classes of "label" for the
  online probe's head)."""
  num_classes = (data.info.features["label"].num_classes if "label" in data.info.features
                 else None)
  return split_model(config_lib.build_model(config, data.in_channels, config.seed,
                                            num_classes=num_classes,
                                            num_frames=config.clips.num_frames))[1:]


def evaluate(config: Experiment, workdir: str, graphdef, state, mesh, *,
             train_seconds: float, protocol_names: str | Sequence[str] | None = None,
             report_pictures: bool | None = None, previous: dict[str, Any] | None = None
             ) -> dict[str, Any]:
  """run.evaluate for a video dataset (same arguments and results.json; the module
  docstring says what differs)."""
  from jax_ssl.evaluate import video_finetune  # pylint: disable=g-import-not-at-top  (imports this)
  start = time.perf_counter()
  ev = config.eval
  chosen = protocols.parse_protocols(ev.protocols if protocol_names is None else protocol_names)
  if chosen.attentive:
    raise ConfigError("eval.protocols 'attentive' reads image patch tokens; video runs have "
                      "knn, linear, lowlabel, finetune and retrieval: drop 'attentive'")
  report_pictures = ev.report if report_pictures is None else report_pictures
  data = VideoEvalData(config)
  step = int(jax.device_get(state.step))
  results: dict[str, Any] = dict(previous or {}) if (previous or {}).get("steps") == step else {}
  evaluated = config_lib.evaluation_encoder(config)
  results.update({"method": config.method, "dataset": config.dataset.name, "steps": step,
                  "train_seconds": round(float(train_seconds), 1), "encoder": evaluated,
                  "host": host.describe(),
                  "label_keys": list(data.label_keys), "eval_clips": dict(data.clip_args)})
  results["eval_examples"] = data.example_counts()
  encoder = make_clip_encoder(graphdef, mesh, config.augment.output_size, ev.crop_fraction)
  feature_args = dict(knn_k=ev.knn_k, knn_k_sweep=tuple(ev.knn_k_sweep),
                      knn_temperature=ev.knn_temperature,
                      low_label_seeds=tuple(ev.low_label_seeds))

  train = test = None
  knn_predictions: dict[str, np.ndarray] = {}
  if chosen.frozen or report_pictures:
    trained = encoder(*encoder_weights(state, evaluated))
    train, test = data.features(trained, "train", mesh), data.features(trained, "test", mesh)
  if chosen.frozen:
    scores, knn_predictions = frozen_protocols_by_label(train, test, chosen, data.num_classes,
                                                        **feature_args)
    results.update(scores)
  if test is not None:
    results["diagnostics"] = diagnostics.evaluation_diagnostics(test[0])
  init_weights = (_random_init_weights(config, data)
                  if ev.baselines and (chosen.frozen or chosen.finetune) else None)
  if chosen.finetune:
    finetuned, baseline = video_finetune.finetune_protocols(
        config, data, graphdef, state, mesh, chosen,
        train[1] if train is not None else None, init_weights)
    results.update(finetuned)
    if baseline:
      baselines = results.setdefault("baselines", {})
      baselines["random_init"] = {**baselines.get("random_init", {}), **baseline}
  if ev.baselines and chosen.frozen:
    batch_sharding = sharding.batch_sharding(mesh)
    size = ev.raw_pixel_size or config.augment.output_size
    pixels = jax.jit(lambda clips: raw_pixel_features(
        clips, size=size, frames=ev.raw_pixel_frames, crop_fraction=ev.crop_fraction),
                     in_shardings=batch_sharding, out_shardings=batch_sharding)
    baselines = results.setdefault("baselines", {})
    for name, feature_fn in (("raw_pixels", pixels),
                             ("random_init", encoder(*sharding.replicate(init_weights, mesh)))):
      baseline_test = data.features(feature_fn, "test", mesh)
      scores, _ = frozen_protocols_by_label(data.features(feature_fn, "train", mesh),
                                            baseline_test, chosen, data.num_classes,
                                            **feature_args)
      baselines[name] = {**baselines.get(name, {}), **scores, "diagnostics":
                         diagnostics.evaluation_diagnostics(baseline_test[0], warn=False)}
    baselines["raw_pixels"]["note"] = (
        f"centre view at {size}px, {ev.raw_pixel_frames} frames (anti-aliased resampling), "
        f"flattened, averaged over {ev.num_clips} clip(s)")
    if "diagnostics" in results:
      diagnostics.warn_if_below_random_init(results["diagnostics"],
                                            baselines["random_init"]["diagnostics"])
  evaluated_any = chosen.frozen or chosen.finetune
  results = run.write_results(results, workdir, start=start, evaluated_any=evaluated_any,
                              describe_diagnostics=test is not None)
  if jax.process_index() == 0:
    if report_pictures:
      key = data.label_keys[0]  # the report's embedding and confusion matrix: the first key
      predictions = knn_predictions.get(key)
      if predictions is None:
        predictions = knn.knn_predict(train[0], train[1][key], test[0],
                                      num_classes=data.num_classes[key], k=ev.knn_k,
                                      temperature=ev.knn_temperature)
      path = report.write_report(
          workdir, results, train_features=train[0], train_labels=train[1][key],
          test_features=test[0], test_labels=test[1][key], knn_predictions=predictions,
          knn_k=ev.knn_k, num_classes=data.num_classes[key], class_names=data.class_names[key])
      print(f"report: {path}", flush=True)
  return results


def export_features(config: Experiment, graphdef, state, mesh, out_dir: str,
                    splits: Sequence[str] = ("train", "test")) -> dict[str, tuple[int, ...]]:
  """run.export_features for videos: OUT_DIR/<split>_features.npy (clip-averaged features)
  and <split>_<key>s.npy for each label key ("label" -> <split>_labels.npy)."""
  data = VideoEvalData(config)
  trained = make_clip_encoder(graphdef, mesh, config.augment.output_size,
                              config.eval.crop_fraction)(
      *encoder_weights(state, config_lib.evaluation_encoder(config)))
  shapes = {}
  for split in splits:
    features, labels = data.features(trained, split, mesh)
    run.save_arrays(out_dir, {f"{split}_features.npy": features,
                              **{f"{split}_{key}s.npy": value for key, value in labels.items()}})
    shapes[split] = features.shape
  return shapes
