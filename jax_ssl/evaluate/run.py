"""Evaluation of a trained encoder: the protocols of protocols.py (kNN, linear probe,
low-label probes), fine-tuning (finetune.py), baselines, results.json, the report and
feature export.

The encoder evaluated is `eval.encoder` ("method": the one the method's paper evaluates,
DINO's EMA teacher; "online"; "target"), recorded as results.json's "encoder".
Each frozen-feature protocol also runs on raw pixels and on the randomly initialised encoder
(the same seed's initial weights), the baselines a method must beat; fine-tuning also runs
from the random initialisation (`baselines.random_init.finetune_top1`: what pretraining
must improve on).
The attentive protocol (attentive_probe.py) trains V-JEPA's attentive probe on the cached
patch tokens of the same encoder (and of the random initialisation with the baselines).
RankMe and the normalised std of the test features (jax_ssl/diagnostics.py) go to
results.json's "diagnostics", with a warning line if they show a collapse.
Results go to `DIR/results.json` and are printed as a table; with `eval.report` (or
`--report`) the pictures and `DIR/report.md` are written too (report.py). DIR (and the
feature export's folder) may be a URL (gs://...): files go through etils.epath (jax_ssl/fs.py).
Video datasets go to evaluate/video.py: the same protocols on clip-averaged features, once
per label key of `eval.label_keys`, with retrieval and the multi-clip test.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from jax_ssl import config as config_lib
from jax_ssl.config import data_checks
from jax_ssl.config.schema import Experiment
from jax_ssl import fs, sharding
from jax_ssl.data import augment, pipeline
from jax_ssl.errors import ConfigError, DataError
from jax_ssl import diagnostics
from jax_ssl.evaluate import attentive_probe, finetune, host, knn, protocols, report
from jax_ssl.evaluate.features import Subset, extract, make_token_fn
from jax_ssl.state import encoder_weights, split_model
from jax_ssl.step import make_feature_fn

class EvalData:
  """The labelled dataset of a config: info, class count and names, train/test sources."""

  def __init__(self, config: Experiment):
    data = config.dataset
    self.info = pipeline.dataset_info(data.name, data_dir=data.data_dir)
    if "label" not in self.info.features:
      raise DataError(f"dataset {data.name!r} has no labels (an image folder without class "
                      f"subfolders): the evaluation protocols need them; build it from one "
                      f"subfolder per class to evaluate")
    data_checks.refuse_unevaluable(config, self.info)  # < 2 classes, no test split: one line
    self.num_classes = self.info.features["label"].num_classes
    self.class_names = list(self.info.features["label"].names)
    self.in_channels = self.info.features["image"].shape[-1]
    self.image_size = data.image_size
    self.sources = {
        split: pipeline.load_source(data.name, name, data_dir=data.data_dir,
                                    in_memory_max_bytes=data.in_memory_max_bytes,
                                    reads=_reads(config, limit))
        for split, name, limit in (("train", data.train_split, config.eval.train_limit),
                                   ("test", data.test_split, config.eval.test_limit))}
    self.limits = {"train": config.eval.train_limit, "test": config.eval.test_limit}
    # Every global batch splits evenly over the devices.
    self.batch_size = -(-config.eval.batch_size // jax.device_count()) * jax.device_count()

  def example_counts(self) -> dict[str, list[int]]:
    """{split: [examples evaluated (eval.*_limit applied), examples in the split]}."""
    return {split: [min(self.limits[split] or len(source), len(source)), len(source)]
            for split, source in self.sources.items()}

  def features(self, feature_fn, split: str, mesh) -> tuple[np.ndarray, np.ndarray]:
    return extract(feature_fn, self.sources[split], batch_size=self.batch_size,
                   limit=self.limits[split], mesh=mesh, image_size=self.image_size)

def _reads(config: Experiment, limit: int) -> int | None:
  """The records of a split the evaluation reads at least (None: all, more than once): the
  encoder's features and each frozen baseline's."""
  return limit * (3 if config.eval.baselines else 1) if limit else None


def make_encoder(graphdef, mesh, output_size: int, crop_fraction: float = 1.0, *,
                 tokens: bool = False, last_blocks: int = 1, avgpool: bool = False):
  """`encoder(params, batch_stats)` -> a jitted `images -> backbone features` on the centre
  view (`tokens`: its patch tokens, features.patch_tokens; `last_blocks` / `avgpool`: a
  ViT's linear-probe features, step.make_feature_fn); one compilation serves the trained and
  the random-init weights (same shapes)."""
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  features = (make_token_fn(graphdef) if tokens
              else make_feature_fn(graphdef, last_blocks, avgpool))
  view = lambda images: augment.center_view(images, output_size, crop_fraction=crop_fraction)
  encode = jax.jit(lambda p, s, images: features(p, s, view(images)),
                   in_shardings=(replicated, replicated, batch_sharding),
                   out_shardings=batch_sharding)
  # Weights of any sharding (a train state under config.sharding="fsdp") are gathered once
  # per encoder: jit refuses a committed argument whose sharding is not its in_shardings.
  gather = jax.jit(lambda weights: weights, out_shardings=replicated)

  def bind(params, batch_stats):
    params, batch_stats = gather((params, batch_stats))
    return lambda images: encode(params, batch_stats, images)

  return bind

def finetune_settings(config: Experiment) -> finetune.FinetuneSettings:
  ft = config.eval.finetune
  return finetune.FinetuneSettings(
      steps=ft.steps, batch_size=ft.batch_size, base_learning_rate=ft.base_learning_rate,
      weight_decay=ft.weight_decay, warmup_steps=ft.warmup_steps,
      label_smoothing=ft.label_smoothing, layer_decay=ft.layer_decay, optimizer=ft.optimizer,
      crop_scale=tuple(ft.crop_scale), output_size=config.augment.output_size,
      crop_fraction=config.eval.crop_fraction)

def _attentive_protocol(config: Experiment, data: EvalData, graphdef, mesh,
                        weights: tuple[Any, Any]) -> dict[str, Any]:
  """attentive_probe.evaluate of the encoder with `weights` (params, batch stats)."""
  ev = config.eval
  settings = attentive_probe.AttentiveSettings(
      steps=ev.attentive_steps, batch_size=ev.attentive_batch_size,
      learning_rate=ev.attentive_learning_rate, weight_decay=ev.attentive_weight_decay)
  tokens = make_encoder(graphdef, mesh, config.augment.output_size, ev.crop_fraction,
                        tokens=True)(*weights)
  heads = ev.attentive_num_heads or attentive_probe.default_num_heads(
      nnx.merge(graphdef, *weights).backbone)
  return attentive_probe.evaluate(data, tokens, mesh, num_heads=heads, settings=settings,
                                  seed=config.seed)

def _finetune_protocols(config, data: EvalData, graphdef, state, mesh,
                        chosen: protocols.Protocols, train_labels: np.ndarray | None,
                        init_weights: tuple[Any, Any] | None
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(results, random-init baseline): finetune_top1 (all labels) and, with low-label
  percentages and `eval.finetune.low_label`, finetune_<P>pct_top1; the same runs from
  `init_weights` (the same seed's initial params and batch stats) if given, else an empty
  baseline."""
  start = time.perf_counter()
  settings = finetune_settings(config)
  params, batch_stats = encoder_weights(state, config_lib.evaluation_encoder(config))
  tuner = finetune.Finetuner(graphdef, params, batch_stats, num_classes=data.num_classes,
                             settings=settings, mesh=mesh, image_size=data.image_size)
  train_source = data.sources["train"]
  if data.limits["train"]:
    train_source = Subset(train_source, np.arange(min(data.limits["train"], len(train_source))))
  percents = chosen.low_label_percents if config.eval.finetune.low_label else ()
  if percents and train_labels is None:
    train_labels = np.asarray([int(train_source[i]["label"]) for i in range(len(train_source))])

  def scores(weights) -> dict[str, Any]:
    run = lambda source, seed: tuner.run(source, data.sources["test"], seed=seed,
                                         eval_batch_size=data.batch_size,
                                         test_limit=data.limits["test"], weights=weights)["top1"]
    out: dict[str, Any] = {"finetune_top1": run(train_source, config.seed)}
    for percent in percents:
      subsets = protocols.low_label_subsets(train_labels, percent, num_classes=data.num_classes,
                                            seeds=config.eval.low_label_seeds)
      per_seed = [run(Subset(train_source, subset), seed)
                  for subset, seed in zip(subsets, config.eval.low_label_seeds)]
      out.update(protocols.low_label_results("finetune", percent, per_seed))
    return out

  results = scores(None)
  baseline = scores(init_weights) if init_weights is not None else {}
  results["finetune_layer_decay"] = settings.layer_decay if tuner.layer_decay_applied else None
  results["finetune_note"] = (
      f"{settings.steps} steps of batch {settings.batch_size}, {settings.optimizer}, peak lr "
      f"{settings.base_learning_rate:g} x batch/256, weight decay {settings.weight_decay:g}, "
      f"label smoothing {settings.label_smoothing:g}, crop scale {settings.crop_scale}, "
      + (f"layer-wise lr decay {settings.layer_decay:g}" if tuner.layer_decay_applied else
         f"no layer-wise lr decay ({tuner.backbone_name} has no layer_index)"
         if settings.layer_decay < 1 else "no layer-wise lr decay"))
  results["finetune_seconds"] = round(time.perf_counter() - start, 1)
  return results, baseline

def _frozen_protocols(data: EvalData, mesh, chosen: protocols.Protocols, feature_args,
                      train, test, probe_fn) -> tuple[dict[str, Any], np.ndarray | None]:
  """The frozen protocols of one encoder: kNN and retrieval on its pooled `train` / `test`
  features; the linear and low-label probes on `probe_fn`'s (None: the pooled ones too)."""
  if probe_fn is None or not (chosen.linear or chosen.low_label_percents):
    return protocols.frozen_feature_protocols(*train, *test, chosen, **feature_args)
  pooled = dataclasses.replace(chosen, linear=False, low_label_percents=())
  scores, predictions = protocols.frozen_feature_protocols(*train, *test, pooled,
                                                           **feature_args)
  probed = protocols.Protocols(linear=chosen.linear,
                               low_label_percents=chosen.low_label_percents)
  probe_scores, _ = protocols.frozen_feature_protocols(
      *data.features(probe_fn, "train", mesh), *data.features(probe_fn, "test", mesh), probed,
      **feature_args)
  return {**scores, **probe_scores}, predictions


def evaluate(config: Experiment, workdir: str, graphdef, state, mesh, *,
             train_seconds: float, protocol_names: str | Sequence[str] | None = None,
             report_pictures: bool | None = None, previous: dict[str, Any] | None = None
             ) -> dict[str, Any]:
  """Runs the protocols on the trained encoder (and the baselines); writes results.json.

  Args:
    config: the run's config (`eval.*` and the data).
    workdir: where results.json (and report.md) go.
    graphdef, state: the model and its trained TrainState.
    mesh: the device mesh.
    train_seconds: recorded in results.json.
    protocol_names: protocols to run (default `eval.protocols`); see protocols.py.
    report_pictures: write DIR/report.md and its pictures (default `eval.report`).
    previous: results of an earlier evaluation of the same step, updated rather than
      replaced (e.g. `--protocols finetune` adds finetune_top1 to the kNN/linear results).

  Returns:
    The results written.
  """
  if _is_video(config):  # clips, one result per label key (evaluate/video.py)
    from jax_ssl.evaluate import video  # pylint: disable=g-import-not-at-top  (imports this)
    return video.evaluate(config, workdir, graphdef, state, mesh, train_seconds=train_seconds,
                          protocol_names=protocol_names, report_pictures=report_pictures,
                          previous=previous)
  start = time.perf_counter()
  ev = config.eval
  chosen = protocols.parse_protocols(ev.protocols if protocol_names is None else protocol_names)
  report_pictures = ev.report if report_pictures is None else report_pictures
  data = EvalData(config)
  step = int(jax.device_get(state.step))
  results: dict[str, Any] = dict(previous or {}) if (previous or {}).get("steps") == step else {}
  evaluated = config_lib.evaluation_encoder(config)
  results.update({"method": config.method, "dataset": config.dataset.name, "steps": step,
                  "train_seconds": round(float(train_seconds), 1), "encoder": evaluated,
                  "host": host.describe()})
  results["eval_examples"] = data.example_counts()  # compare.py marks subsets
  encoder = make_encoder(graphdef, mesh, config.augment.output_size, ev.crop_fraction)
  probe_encoder = None  # the linear probes' own ViT features (eval.linear_blocks / _avgpool)
  if ev.linear_blocks > 1 or ev.linear_avgpool:
    probe_encoder = make_encoder(graphdef, mesh, config.augment.output_size, ev.crop_fraction,
                                 last_blocks=ev.linear_blocks, avgpool=ev.linear_avgpool)
    results["linear_input"] = {"blocks": ev.linear_blocks, "avgpool": ev.linear_avgpool}
  elif chosen.linear or chosen.low_label_percents:  # an earlier evaluation's, now replaced
    results.pop("linear_input", None)
  feature_args = dict(num_classes=data.num_classes, knn_k=ev.knn_k,
                      knn_k_sweep=tuple(ev.knn_k_sweep), knn_temperature=ev.knn_temperature,
                      low_label_seeds=tuple(ev.low_label_seeds))

  train = test = knn_predictions = None
  if chosen.frozen or report_pictures:
    trained = encoder(*encoder_weights(state, evaluated))
    train, test = data.features(trained, "train", mesh), data.features(trained, "test", mesh)
  if chosen.frozen:
    probe_fn = probe_encoder(*encoder_weights(state, evaluated)) if probe_encoder else None
    scores, knn_predictions = _frozen_protocols(data, mesh, chosen, feature_args, train, test,
                                                probe_fn)
    results.update(scores)
  if test is not None:  # RankMe and the normalised std of the test features (one line if bad)
    results["diagnostics"] = diagnostics.evaluation_diagnostics(test[0])
  if chosen.attentive:
    results.update(_attentive_protocol(config, data, graphdef, mesh,
                                       encoder_weights(state, evaluated)))
  # The random-init baseline's weights, built once for the frozen protocols and fine-tuning.
  init_weights = (split_model(config_lib.build_model(
      config, data.in_channels, config.seed, num_classes=data.num_classes))[1:]
                  if ev.baselines and (chosen.frozen or chosen.finetune or chosen.attentive)
                  else None)
  if chosen.finetune:
    finetuned, baseline = _finetune_protocols(config, data, graphdef, state, mesh, chosen,
                                              train[1] if train is not None else None,
                                              init_weights)
    results.update(finetuned)
    if baseline:
      baselines = results.setdefault("baselines", {})
      baselines["random_init"] = {**baselines.get("random_init", {}), **baseline}
  if ev.baselines and chosen.frozen:
    output_size = config.augment.output_size
    batch_sharding = sharding.batch_sharding(mesh)
    pixels = jax.jit(lambda images: augment.center_view(
        images, output_size, crop_fraction=ev.crop_fraction).reshape(
        images.shape[0], -1), in_shardings=batch_sharding, out_shardings=batch_sharding)
    baselines = results.setdefault("baselines", {})
    init_replicated = sharding.replicate(init_weights, mesh)
    for name, feature_fn, probe_fn in (
        ("raw_pixels", pixels, None),
        ("random_init", encoder(*init_replicated),
         probe_encoder(*init_replicated) if probe_encoder else None)):
      baseline_test = data.features(feature_fn, "test", mesh)
      scores, _ = _frozen_protocols(data, mesh, chosen, feature_args,
                                    data.features(feature_fn, "train", mesh), baseline_test,
                                    probe_fn)
      baselines[name] = {**baselines.get(name, {}), **scores, "diagnostics":
                         diagnostics.evaluation_diagnostics(baseline_test[0], warn=False)}
    if "diagnostics" in results:  # rank lost against the encoder's own start: one line
      diagnostics.warn_if_below_random_init(results["diagnostics"],
                                            baselines["random_init"]["diagnostics"])
  if ev.baselines and chosen.attentive:
    baselines = results.setdefault("baselines", {})
    scores = _attentive_protocol(config, data, graphdef, mesh,
                                 sharding.replicate(init_weights, mesh))
    baselines["random_init"] = {**baselines.get("random_init", {}),
                                "attentive_top1": scores["attentive_top1"]}
  evaluated_any = chosen.frozen or chosen.finetune or chosen.attentive
  results = write_results(results, workdir, start=start, evaluated_any=evaluated_any,
                          describe_diagnostics=test is not None)
  if jax.process_index() == 0:
    if report_pictures:
      if knn_predictions is None:
        knn_predictions = knn.knn_predict(train[0], train[1], test[0], num_classes=data.num_classes,
                                          k=ev.knn_k, temperature=ev.knn_temperature)
      path = report.write_report(
          workdir, results, train_features=train[0], train_labels=train[1],
          test_features=test[0], test_labels=test[1], knn_predictions=knn_predictions,
          knn_k=ev.knn_k, num_classes=data.num_classes, class_names=data.class_names)
      print(f"report: {path}", flush=True)
  return results

def write_results(results: dict, workdir: str, *, start: float, evaluated_any: bool,
                  describe_diagnostics: bool) -> dict:
  """The end of an evaluation (images or video): the evaluation time (when anything was
  evaluated, or none was recorded), the keys in their order (the encoder's results, then the
  baselines and the time), results.json written (if anything was evaluated) and the table
  and the diagnostics printed by process 0. Returns the reordered results."""
  if evaluated_any or "eval_seconds" not in results:
    results["eval_seconds"] = round(time.perf_counter() - start, 1)
  results = {**{k: v for k, v in results.items() if k not in ("baselines", "eval_seconds")},
             **{k: results[k] for k in ("baselines", "eval_seconds") if k in results}}
  if jax.process_index() == 0:
    if evaluated_any:
      (fs.path(workdir) / "results.json").write_text(json.dumps(results, indent=2))
    print(report.results_table(results), flush=True)
    if "diagnostics" in results and describe_diagnostics:
      print(diagnostics.describe(results["diagnostics"]), flush=True)
  return results


def _is_video(config: Experiment) -> bool:
  return pipeline.is_video(pipeline.dataset_info(config.dataset.name,
                                                 data_dir=config.dataset.data_dir))

def check_splits(splits: Sequence[str]) -> None:
  unknown = [s for s in splits if s not in ("train", "test")]
  if unknown or not splits:
    raise ConfigError(f"--split {','.join(splits)}: unknown split {(unknown or [''])[0]!r}; use "
                      f"train, test or train,test (the config's dataset.train_split / test_split)")

def export_features(config: Experiment, graphdef, state, mesh, out_dir: str,
                    splits: Sequence[str] = ("train", "test")) -> dict[str, tuple[int, ...]]:
  """Writes OUT_DIR/<split>_features.npy ([n, d] float32 backbone features of the centre
  views) and <split>_labels.npy ([n] int) for each split ("train", "test": the config's
  dataset splits, `eval.train_limit` / `test_limit` applied). Returns {split: shape}."""
  check_splits(splits)
  if _is_video(config):
    from jax_ssl.evaluate import video  # pylint: disable=g-import-not-at-top  (imports this)
    return video.export_features(config, graphdef, state, mesh, out_dir, splits)
  data = EvalData(config)
  trained = make_encoder(graphdef, mesh, config.augment.output_size,
                         config.eval.crop_fraction)(
      *encoder_weights(state, config_lib.evaluation_encoder(config)))
  shapes = {}
  for split in splits:
    features, labels = data.features(trained, split, mesh)
    save_arrays(out_dir, {f"{split}_features.npy": features, f"{split}_labels.npy": labels})
    shapes[split] = features.shape
  return shapes


def save_arrays(out_dir: str, arrays: dict[str, np.ndarray]) -> None:
  """OUT_DIR/NAME.npy for each named array, written by process 0 (`export_features`)."""
  if jax.process_index() == 0:
    fs.make_dirs(out_dir)
    for name, array in arrays.items():
      with (fs.path(out_dir) / name).open("wb") as f:
        np.save(f, array)

def format_table(results: dict[str, Any]) -> str:
  """Markdown table: one row per feature source, one column per accuracy (report.py)."""
  return report.results_table(results)
