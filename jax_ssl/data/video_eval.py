"""Clips of video datasets for evaluation: every video's evenly spaced clips (frozen features,
retrieval, multi-clip test averaging) and one random clip per video for fine-tuning.

`eval_clip_batches` is `pipeline.eval_batches` for videos: the split once, in order, padded
to whole global batches the same way (padding rows repeat the last video, `num_valid` says
how many rows of the global batch are real), each process its slice. Each video gives
`num_clips` clips of `num_frames` frames every `stride` frames, starting at
`clips.eval_clip_starts` (one clip: centred; several: evenly spaced from the first frame to
the last, RSPNet's `EvenNCrop` and SlowFast's multi-view test), so the evaluation is the same
on any number of processes and devices.

`finetune_clip_iterator` is `pipeline.train_iterator` for fine-tuning on clips: one clip per
video at a uniform random start (`clips.sample_clips`, seeded by (seed, position in the
global stream), as the pretraining's clips are), with the label of the chosen label key.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np

from jax_ssl.data import clips as clips_lib
from jax_ssl.errors import DataError


def _video(record: dict[str, Any]) -> np.ndarray:
  """A record's frames as uint8 [N, H, W, C] (a one-channel [N, H, W] gets its C axis)."""
  video = np.asarray(record["video"], np.uint8)
  return video[..., None] if video.ndim == 3 else video


def _label(record: dict[str, Any], key: str) -> np.ndarray:
  if key not in record:
    raise DataError(f"the video records have no {key!r} label (they have "
                    f"{sorted(k for k in record if k != 'video')}); set "
                    f"--config.eval.label_keys to labels the dataset has")
  return np.asarray(record[key], np.int32)


def eval_clips(video: np.ndarray, *, num_frames: int, stride: int, num_clips: int
               ) -> np.ndarray:
  """The evaluation clips of one video [N, H, W, C]: [num_clips, T, H, W, C], clip k
  starting at `clips.eval_clip_starts(N, span, num_clips)[k]`, frames past the end clamped
  to the last (`clips.clip_at`)."""
  span = clips_lib.clip_span(num_frames, stride)
  starts = clips_lib.eval_clip_starts(video.shape[0], span, num_clips)
  return np.stack([clips_lib.clip_at(video, start, num_frames, stride) for start in starts])


def eval_clip_batches(source, *, batch_size: int, num_frames: int, stride: int,
                      num_clips: int, process_index: int = 0, process_count: int = 1,
                      label_keys: Sequence[str] = ("label",)
                      ) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """Yields (batch, num_valid) covering the video `source` once in order, padded to whole
  batches as `pipeline.eval_batches` pads.

  Args:
    source: random-access video records {"video": uint8 [N, H, W, C] (or [N, H, W]), label
      keys: int}.
    batch_size: videos per process and batch (the global batch is batch_size *
      process_count).
    num_frames, stride: each clip's frames and frame step.
    num_clips: evenly spaced clips per video (`eval_clips`).
    process_index, process_count: this process's slice of every global batch.
    label_keys: the record keys returned as labels.

  Yields:
    ({"image": uint8 [batch_size, num_clips, T, H, W, C], key: int32 [batch_size] for each
    label key}, number of valid rows of the global batch).
  """
  total = len(source)
  global_batch = batch_size * process_count
  for start in range(0, total, global_batch):
    num_valid = int(min(global_batch, total - start))
    indices = np.minimum(np.arange(start, start + global_batch), total - 1)
    indices = indices[process_index * batch_size:(process_index + 1) * batch_size]
    records = [source[int(i)] for i in indices]
    batch = {"image": np.stack([eval_clips(_video(r), num_frames=num_frames, stride=stride,
                                           num_clips=num_clips) for r in records])}
    for key in label_keys:
      batch[key] = np.stack([_label(r, key) for r in records])
    yield batch, num_valid


def _finetune_clip(index: int, record: dict[str, Any], *, sampling: clips_lib.ClipSampling,
                   seed: int, label_key: str) -> dict[str, np.ndarray]:
  """Record at position `index` of the global stream -> {"image": uint8 [T, H, W, C] (one
  random clip), "label": int32 of `label_key`}."""
  sampled = clips_lib.sample_clips(_video(record), sampling, seed=seed, index=index)
  return {"image": sampled["clips"][0], "label": _label(record, label_key)}


def finetune_clip_iterator(source, *, local_batch_size: int, seed: int, process_index: int,
                           process_count: int, num_frames: int, stride: int,
                           label_key: str = "label", read_threads: int = 4,
                           prefetch_buffer_size: int = 8) -> grain.DatasetIterator:
  """Infinite iterator of this process's fine-tuning batches {"image": uint8 [B, T, H, W,
  C], "label": int32 [B]}: videos in a fresh seeded order every epoch (as
  `pipeline.train_iterator`), one clip each at a uniform random start (the training clip of
  RSPNet's and SlowFast's fine-tuning: `RandomStrideCrop`, `get_start_end_idx` with
  clip_idx = -1), `label` the record's `label_key`."""
  sampling = clips_lib.ClipSampling(num_frames=num_frames, stride=stride, num_clips=1)
  dataset = (grain.MapDataset.source(source).shuffle(seed=seed).repeat()
             .map_with_index(functools.partial(_finetune_clip, sampling=sampling, seed=seed,
                                               label_key=label_key))
             .batch(local_batch_size, drop_remainder=True))[process_index::process_count]
  options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)
  return iter(dataset.to_iter_dataset(options))
