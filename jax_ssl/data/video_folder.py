"""A folder of your own videos as an array_record TFDS dataset: `prepare_data video_folder`.

The layouts are the image folders' (`image_folder.scan`: class subfolders = labels, their
sorted names the label ids, `test_fraction` of each class held out as `test`; a flat folder
= unlabelled; train/ and test/ subfolders = given splits). PyAV (the `video` extra:
`pip install 'jax_ssl[video]'`) decodes every file FFmpeg reads (mp4, avi, mkv, webm, ...).

Frames are resized when the dataset is built, not kept encoded: each frame's shorter side
to `image_size` then a centre crop (`resize="shorter_side_center_crop"`, the default, as
image folders and the evaluation views of image datasets do; "stretch" and "pad" as there),
so a record is {"video": uint8 [N, image_size, image_size, C], "label"} with N the video's
frame count (at most `num_frames`, at most `fps` frames a second: both optional). The
frames are stored zlib-compressed (tfds.features.Tensor, Encoding.ZLIB): readable without an
image or video codec, and a clip sampler reads any frame of a record at once. Raw frames
are large (64x64x3: 12 KB a frame before compression), so for Kinetics-sized folders choose
a small `image_size`, a `fps` and a `num_frames`.

Files FFmpeg cannot decode, files with no video stream or no frame, and files outside the
class folders are skipped and reported by name, never silently (as image folders do).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageOps

from jax_ssl.data import image_folder
from jax_ssl.errors import ConfigError, DataError

RESIZE_MODES = ("shorter_side_center_crop", "stretch", "pad")
INSTALL_HINT = "pip install 'jax_ssl[video]'"


def resize_frame(image: Image.Image, *, image_size: int, resize: str, channels: int
                 ) -> np.ndarray:
  """One decoded frame -> uint8 [image_size, image_size, channels] (image_folder.load_image's
  resize modes, on a decoded frame rather than a file)."""
  image = image.convert("RGB" if channels == 3 else "L")
  size = (image_size, image_size)
  if resize == "shorter_side_center_crop":
    image = ImageOps.fit(image, size, Image.Resampling.BICUBIC)
  elif resize == "stretch":
    image = image.resize(size, Image.Resampling.BICUBIC)
  else:  # "pad": longer side to image_size, black borders
    image = ImageOps.pad(image, size, Image.Resampling.BICUBIC, color=0)
  array = np.asarray(image, np.uint8)
  return array[..., None] if array.ndim == 2 else array


def load_video(path: str, *, image_size: int, resize: str = "shorter_side_center_crop",
               channels: int = 3, fps: float = 0.0, num_frames: int = 0) -> np.ndarray:
  """Decodes the first video stream of `path` -> uint8 [N, image_size, image_size, channels].

  fps > 0: keeps the first frame at or after each multiple of 1/fps seconds from the first
  frame (frames are never repeated: a slower video keeps its own rate). num_frames > 0:
  stops after that many frames. Raises (av.error.FFmpegError, ValueError) if the file has no
  decodable video frame.
  """
  import av  # pylint: disable=g-import-not-at-top  # the `video` extra
  frames, next_time, first_time = [], 0.0, None
  with av.open(path) as container:
    if not container.streams.video:
      raise ValueError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    for index, frame in enumerate(container.decode(stream)):
      if fps > 0:
        time = frame.time if frame.time is not None else index / (rate or fps)
        first_time = time if first_time is None else first_time
        if time - first_time < next_time - 1e-6:
          continue
        while next_time <= time - first_time + 1e-6:
          next_time += 1.0 / fps
      frames.append(resize_frame(frame.to_image(), image_size=image_size, resize=resize,
                                 channels=channels))
      if num_frames and len(frames) == num_frames:
        break
  if not frames:
    raise ValueError("no decodable video frame")
  return np.stack(frames)


class Builder(image_folder.FolderBuilder, skip_registration=True):
  """One video folder as a TFDS dataset named `name` (found by name in its data_dir)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Built by `python -m jax_ssl.prepare_data video_folder`."}
  FEATURE = "video"

  def __init__(self, *, fps: float, num_frames: int, **kwargs):
    self._fps, self._num_frames = fps, num_frames
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    feature = tfds.features.Tensor(
        shape=(None, self._image_size, self._image_size, self._channels), dtype=np.uint8,
        encoding=tfds.features.Encoding.ZLIB)
    return self._folder_info(
        "video", feature, f"Videos from {self._source}, frames resize={self._resize}.",
        fps=self._fps, num_frames=self._num_frames)

  def _load(self, path: str) -> np.ndarray:
    return load_video(path, image_size=self._image_size, resize=self._resize,
                      channels=self._channels, fps=self._fps, num_frames=self._num_frames)


def describe(info: tfds.core.DatasetInfo) -> str:
  """'train 9, test 2 videos of 32x32x3 frames, 2 classes (a, b)': prepare_data's summary."""
  splits = ", ".join(f"{split} {info.splits[split].num_examples}"
                     for split in sorted(info.splits, reverse=True))
  _, height, width, channels = info.features["video"].shape
  if "label" in info.features:
    names = info.features["label"].names
    labels = f"{len(names)} class{'es' if len(names) != 1 else ''} ({', '.join(names)})"
  else:
    labels = "unlabelled (pretraining only)"
  return f"{splits} videos of {height}x{width}x{channels} frames, {labels}"


def build(source: str, *, name: str, data_dir: str, image_size: int = 64,
          resize: str = "shorter_side_center_crop", channels: int = 3, fps: float = 0.0,
          num_frames: int = 0, test_fraction: float = 0.1, overwrite: bool = False,
          on_skip: Callable[[str, str], None] | None = None) -> Builder:
  """Builds the videos of `source` as dataset `name` in `data_dir`; returns the builder.

  As image_folder.build: files left out are passed to `on_skip(path, reason)` as they are met
  and listed in the builder's `skipped`; bad input raises ConfigError or DataError (one line).
  """
  if importlib.util.find_spec("av") is None:
    raise ConfigError(f"video_folder decodes videos with PyAV, which is not installed: "
                      f"`{INSTALL_HINT}`")
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
    raise ConfigError(f"--name {name!r}: use lower_snake_case (letters, digits, underscores)")
  try:
    tfds.builder_cls(name)
  except tfds.core.registered.DatasetNotFoundError:
    pass
  else:  # the trainer would look for TFDS's dataset of that name, not this one
    raise ConfigError(f"--name {name!r} is a TFDS dataset's name; choose another name")
  if resize not in RESIZE_MODES:
    raise ConfigError(f"--resize {resize!r}: video_folder resizes every frame at prepare time; "
                      f"choose one of {list(RESIZE_MODES)}")
  if image_size <= 0:
    raise ConfigError(f"--image_size {image_size}; must be a positive number of pixels")
  if channels not in (1, 3):
    raise ConfigError(f"--channels {channels}; use 3 (RGB) or 1 (grayscale)")
  if fps < 0 or num_frames < 0:
    raise ConfigError(f"--fps {fps} --num_frames {num_frames}: use 0 (keep all) or a positive "
                      f"number")
  if not 0 <= test_fraction < 1:
    raise ConfigError(f"--test_fraction {test_fraction}; must be in [0, 1)")
  source, data_dir = os.path.abspath(source), os.path.abspath(data_dir)
  if os.path.isdir(source) and not any(files for _, _, files in os.walk(source)):
    raise DataError(f"no video files in {source}: put videos in it (or in one subfolder per "
                    f"class)")
  layout = image_folder.scan(source, test_fraction=test_fraction)
  command = " ".join([
      "python -m jax_ssl.prepare_data video_folder", f"--source {shlex.quote(source)}",
      f"--name {name}", f"--data_dir {shlex.quote(data_dir)}", f"--image_size {image_size}",
      f"--resize {resize}", f"--channels {channels}", f"--fps {fps:g}",
      f"--num_frames {num_frames}", f"--test_fraction {test_fraction}", "--overwrite"])
  builder = Builder(name=name, source=source, layout=layout, image_size=image_size, resize=resize,
                    channels=channels, fps=fps, num_frames=num_frames, rebuild_command=command,
                    on_skip=on_skip, data_dir=data_dir, file_format="array_record")
  if builder.is_prepared() and not overwrite:
    raise DataError(f"dataset {name!r} already exists in {builder.data_dir}; pass --overwrite to "
                    f"rebuild it, or choose another --name")
  mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS  # regenerates an existing dataset
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(download_mode=mode))
  except BaseException:
    with contextlib.suppress(OSError):  # TFDS removed its temporary folder; drop the empty one
      os.rmdir(os.path.join(data_dir, name))
    raise
  return builder
