"""Video evaluation: jax_ssl.data.video_eval (evaluation clips, fine-tuning clips) and
jax_ssl.evaluate.video / video_finetune (clip-averaged features, one result per label key,
raw pixels, the multi-clip test), on tiny in-memory videos."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import sharding
from jax_ssl.data import video_eval
from jax_ssl.evaluate import finetune, protocols, report, video, video_finetune
from jax_ssl.methods.spec import SSLModel
from jax_ssl.state import split_model


def _counting_videos(lengths):
  """Video i has lengths[i] frames [N, 2, 2] (no channel axis); frame n of video i is all
  10 * i + n, so a clip's pixels name its frames. label i % 3, motion i % 2."""
  return [{"video": np.full((n, 2, 2), 10 * i, np.uint8) + np.arange(n, dtype=np.uint8)[:, None, None],
           "label": i % 3, "motion": i % 2} for i, n in enumerate(lengths)]


def test_eval_clip_batches_order_padding_clip_starts_and_processes():
  source = _counting_videos([9, 9, 2, 9, 9])
  batches = list(video_eval.eval_clip_batches(
      source, batch_size=2, num_frames=2, stride=2, num_clips=3,
      label_keys=("label", "motion")))
  assert [n for _, n in batches] == [2, 2, 1]
  first = batches[0][0]
  assert first["image"].shape == (2, 3, 2, 2, 2, 1) and first["image"].dtype == np.uint8
  # 9 frames, span (2 - 1) * 2 + 1 = 3: starts linspace(0, 6, 3) = 0, 3, 6; frames +0, +2.
  np.testing.assert_array_equal(first["image"][0, :, :, 0, 0, 0], [[0, 2], [3, 5], [6, 8]])
  np.testing.assert_array_equal(first["image"][1, :, :, 0, 0, 0], [[10, 12], [13, 15], [16, 18]])
  # Video 2 has 2 frames, shorter than the span: every clip starts at 0, frame 2 -> the last.
  np.testing.assert_array_equal(batches[1][0]["image"][0, :, :, 0, 0, 0], [[20, 21]] * 3)
  # The last batch is padded with the last video; labels of both keys, in order.
  np.testing.assert_array_equal(batches[2][0]["image"][1], batches[2][0]["image"][0])
  np.testing.assert_array_equal(np.concatenate([b["label"] for b, _ in batches]),
                                [0, 1, 2, 0, 1, 1])
  np.testing.assert_array_equal(np.concatenate([b["motion"] for b, _ in batches]),
                                [0, 1, 0, 1, 0, 0])
  assert batches[0][0]["motion"].dtype == np.int32
  # One centred clip: start (9 - 3) // 2 = 3.
  (one, _), *_ = video_eval.eval_clip_batches(source, batch_size=1, num_frames=2, stride=2,
                                              num_clips=1)
  np.testing.assert_array_equal(one["image"][0, :, :, 0, 0, 0], [[3, 5]])
  # Process 1 of 2 takes the second row of every global batch of 2 (the pad included).
  second = list(video_eval.eval_clip_batches(source, batch_size=1, num_frames=2, stride=2,
                                             num_clips=1, process_index=1, process_count=2))
  assert [n for _, n in second] == [2, 2, 1]
  assert [int(b["label"][0]) for b, _ in second] == [1, 0, 1]  # videos 1, 3, 4 (pad)


class _ClipBackbone(nnx.Module):
  """A stand-in video backbone: float [B, T, H, W, C] -> [B, 3], non-linear in the clip."""

  feature_dim = 3

  def __init__(self, rngs: nnx.Rngs):
    self.linear = nnx.Linear(4 * 8 * 8, 3, rngs=rngs)

  def __call__(self, clips):
    return jnp.tanh(self.linear(clips.reshape(clips.shape[0], -1)) * 5.0)


def _moving_squares(columns):
  """8x8 one-channel videos of 4 frames: a 2x2 square at row r moving 1 px per frame right
  (motion 0, from column a) or left (motion 1, from column a + 3): both cover columns a to
  a + 4. Records for r in 0, 2, 4, 6 and a in `columns`, right before left; "label": the
  square's half of the frame (r >= 4)."""
  records = []
  for row in (0, 2, 4, 6):
    for a in columns:
      for motion, cols in ((0, range(a, a + 4)), (1, range(a + 3, a - 1, -1))):
        frames = np.zeros((4, 8, 8, 1), np.uint8)
        for t, c in enumerate(cols):
          frames[t, row:row + 2, c:c + 2] = 255
        records.append({"video": frames, "label": int(row >= 4), "motion": motion})
  return records


def _encoder_and_features(mesh):
  model = SSLModel(_ClipBackbone(nnx.Rngs(0)), {})
  graphdef, params, batch_stats = split_model(model)
  return model, video.make_clip_encoder(graphdef, mesh, output_size=8)(params, batch_stats)


def test_clip_averaged_features_are_the_mean_of_each_clips_features():
  mesh = sharding.make_mesh()
  model, encoder = _encoder_and_features(mesh)
  # 8 frames: the square's way there and back.
  source = [{**r, "video": np.concatenate([r["video"], r["video"][::-1]])}
            for r in _moving_squares((0, 2))[:10]]
  features, labels = video.extract_clip_features(
      encoder, source, batch_size=8, limit=0, mesh=mesh, num_frames=4, stride=1, num_clips=3,
      label_keys=("label", "motion"))
  assert features.shape == (10, 3) and set(labels) == {"label", "motion"}
  # By hand: clips of 8 frames start at 0, 2, 4; each clip's centre view is its pixels / 255
  # (no resize at 8 px); the video's features are the mean of the three clips'.
  for i in (0, 9):
    clips = np.stack([source[i]["video"][s:s + 4] for s in (0, 2, 4)]).astype(np.float32) / 255
    expected = np.mean(np.asarray(model.backbone(jnp.asarray(clips))), axis=0)
    np.testing.assert_allclose(features[i], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(labels["motion"], [r["motion"] for r in source])
  # The features depend on the clips: averaging differs from the first clip alone.
  first = video.extract_clip_features(encoder, source, batch_size=8, limit=2, mesh=mesh,
                                      num_frames=4, stride=1, num_clips=1)[0]
  assert first.shape == (2, 3) and not np.allclose(first, features[:2])


def _raw_pixel_scores(train, test, mesh, frames):
  pixels = jax.jit(lambda clips: video.raw_pixel_features(clips, size=8, frames=frames))
  extract = lambda source: video.extract_clip_features(
      pixels, source, batch_size=8, limit=0, mesh=mesh, num_frames=4, stride=1, num_clips=1,
      label_keys=("label", "motion"))
  return video.frozen_protocols_by_label(
      extract(train), extract(test), protocols.parse_protocols("knn,retrieval"),
      {"label": 2, "motion": 2}, knn_k=1, knn_k_sweep=(1,), knn_temperature=0.07,
      low_label_seeds=(0,))


def test_raw_pixel_knn_learns_motion_from_frames_not_from_their_average():
  """A test square starts one column off the training ones. With every frame, its nearest
  training clip (cosine 0.5: half of each frame's square overlaps) moves the same way (the
  other direction overlaps in one frame only: 0.25), so kNN gets motion and the frame half
  right. Averaged over time, a square moving right from column a and one moving left to
  it give the same streak: the nearest neighbours tie, the lower training index (the
  right-moving twin) wins, and motion falls to the 0.5 of always answering "right", while
  the frame half, an appearance label, stays right."""
  mesh = sharding.make_mesh()
  train, test = _moving_squares((0, 2)), _moving_squares((1, 3))
  every_frame, predictions = _raw_pixel_scores(train, test, mesh, frames=4)
  assert every_frame["knn_top1"] == 1.0 and every_frame["motion/knn_top1"] == 1.0
  assert every_frame["motion/retrieval_recall@1"] == 1.0 and "retrieval_recall@5" in every_frame
  assert set(predictions) == {"label", "motion"}
  averaged, predictions = _raw_pixel_scores(train, test, mesh, frames=1)
  assert averaged["knn_top1"] == 1.0 and averaged["motion/knn_top1"] == 0.5
  np.testing.assert_array_equal(predictions["motion"], 0)
  # Both label kinds in the printed table, one row per kind.
  table = report.results_table({"method": "pixels", "steps": 0, **averaged}).splitlines()
  assert table[0] == ("| features | labels | knn_top1 | knn_k1_top1 | retrieval_recall@1 | "
                      "retrieval_recall@5 | retrieval_recall@10 |")
  assert table[2].startswith("| pixels (0 steps) | label | 1.0000 | 1.0000 |")
  assert table[3].startswith("| pixels (0 steps) | motion | 0.5000 | 0.5000 | 0.5000 |")


def test_video_finetuner_trains_on_clips_and_averages_softmax_over_test_clips():
  mesh = sharding.make_mesh()
  model = SSLModel(_ClipBackbone(nnx.Rngs(0)), {})
  graphdef, params, batch_stats = split_model(model)
  settings = finetune.FinetuneSettings(
      steps=2, batch_size=8, base_learning_rate=200.0, weight_decay=0.0, warmup_steps=0,
      label_smoothing=0.0, layer_decay=1.0, optimizer="sgd", crop_scale=(0.5, 1.0),
      output_size=8)
  tuner = video_finetune.VideoFinetuner(graphdef, params, batch_stats, num_classes=2,
                                        settings=settings, mesh=mesh, num_frames=4, stride=1,
                                        num_clips=2, label_key="motion")
  source = [{**r, "video": np.concatenate([r["video"], r["video"][::-1]])}
            for r in _moving_squares((0, 2))]
  state, losses = tuner.train(source, seed=0)
  assert int(state.step) == 2 and len(losses) == 2 and np.all(np.isfinite(losses))
  # The test prediction: each clip's softmax, averaged over the 2 evenly spaced clips
  # (frames 0-3 and 4-7 of the 8: the way there and the way back), not the softmax of the
  # averaged logits.
  clips = jnp.asarray(np.stack([np.stack([r["video"][0:4], r["video"][4:8]]) for r in source]))
  averaged = np.asarray(tuner._logits(state, clips))
  per_clip = [np.asarray(tuner._logits(state, clips[:, k:k + 1])) for k in (0, 1)]
  np.testing.assert_allclose(averaged, (per_clip[0] + per_clip[1]) / 2, rtol=1e-5, atol=1e-6)
  assert np.max(np.abs(per_clip[0] - per_clip[1])) > 0.05  # far from linear: tells the two apart
  assert tuner.accuracy(state, source, batch_size=8) == np.mean(
      np.argmax(averaged, axis=1) == [r["motion"] for r in source])


def test_bad_label_keys_and_clip_counts_are_one_line_errors():
  from jax_ssl.config.schema import Evaluation  # pylint: disable=g-import-not-at-top
  from jax_ssl.errors import ConfigError, DataError  # pylint: disable=g-import-not-at-top
  Evaluation(label_keys=("label", "motion"), num_clips=10).validate()
  for bad, match in (({"label_keys": ("label", "label")}, "eval.label_keys="),
                     ({"label_keys": ("motion/x",)}, "without '/'"),
                     ({"num_clips": 0}, "eval.num_clips=0"),
                     ({"raw_pixel_frames": 0}, "eval.raw_pixel_frames=0")):
    with pytest.raises(ConfigError, match=match) as info:
      Evaluation(**bad).validate()
    assert "\n" not in str(info.value)
  with pytest.raises(DataError, match=r"no 'speed' label \(they have \['label', 'motion'\]\); "
                     r"set --config.eval.label_keys") as info:
    next(video_eval.eval_clip_batches(_counting_videos([3]), batch_size=1, num_frames=2,
                                      stride=1, num_clips=1, label_keys=("label", "speed")))
  assert "\n" not in str(info.value)


def test_run_evaluate_hands_a_video_dataset_to_the_clip_protocols(tmp_path, monkeypatch):
  """The trainer's and the CLI's entry point on a tiny Moving Fashion-MNIST: both label
  kinds, retrieval, both baselines through the same path, results.json. The stand-in
  backbone on 8 px centre views keeps it fast; its weights also stand in for the random
  initialisation (building a 3-D CNN compiles dozens of initialisers), so the random-init
  baseline's scores must equal the encoder's."""
  import json  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from conftest import make_idx_dataset, tiny_clip_config, typed  # pylint: disable=g-import-not-at-top
  from jax_ssl.data import pipeline  # pylint: disable=g-import-not-at-top
  from jax_ssl.evaluate import run  # pylint: disable=g-import-not-at-top
  from jax_ssl.state import create_train_state  # pylint: disable=g-import-not-at-top
  source_dir = make_idx_dataset(str(tmp_path / "idx"), num_train=48, num_test=24)
  config = typed(tiny_clip_config("simclr", **{
      "dataset.source_dir": source_dir, "dataset.data_dir": str(tmp_path / "tfds"),
      "augment.output_size": 8, "eval.label_keys": ("label", "motion"),
      "eval.protocols": "knn,retrieval", "eval.baselines": True, "eval.train_limit": 32,
      "eval.test_limit": 16, "eval.batch_size": 16, "eval.knn_k": 5, "eval.knn_k_sweep": (5,),
      "eval.num_clips": 2, "eval.raw_pixel_size": 8, "eval.report": False}))
  pipeline.prepare(config.dataset.name, data_dir=config.dataset.data_dir,
                   source_dir=source_dir)
  mesh = sharding.make_mesh()
  graphdef, state = create_train_state(SSLModel(_ClipBackbone(nnx.Rngs(0)), {}),
                                       optax.identity(), {})
  monkeypatch.setattr(video, "_random_init_weights",
                      lambda config, data: (state.params, state.batch_stats))
  results = run.evaluate(config, str(tmp_path), graphdef, sharding.replicate(state, mesh), mesh,
                         train_seconds=0.0)
  assert json.loads((tmp_path / "results.json").read_text()) == results
  assert results["label_keys"] == ["label", "motion"]
  assert results["eval_examples"] == {"train": [32, 48], "test": [16, 24]}
  keys = [f"{kind}{name}" for kind in ("", "motion/")
          for name in ("knn_top1", "retrieval_recall@1", "retrieval_recall@10")]
  for key in keys:
    assert 0 <= results[key] <= 1
    assert results["baselines"]["random_init"][key] == results[key]
    assert key in results["baselines"]["raw_pixels"]
  # 4 frames of the 8 px centre view, one channel, averaged over the 2 clips.
  assert results["baselines"]["raw_pixels"]["diagnostics"]["dim"] == 4 * 8 * 8
