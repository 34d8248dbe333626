"""A folder of your own images as an array_record TFDS dataset (no TensorFlow, no download).

Layouts of the source folder (hidden files and folders are ignored):

  SOURCE/CLASS/.../IMAGE         labelled: one class per subfolder (label ids follow the sorted
                                 folder names); `test_fraction` of each class is held out as
                                 `test` (the same files for every build), the rest is `train`
  SOURCE/IMAGE                   unlabelled (a flat folder): all images go to `train`, without
                                 a `label` feature (the pipeline gives label -1); pretraining only
  SOURCE/train/..., SOURCE/test/...   either layout per split, with the test set given

Pillow decodes every file (any format it reads, EXIF orientation applied), converts it to RGB
(or grayscale) and resizes it to one shape; images are stored as uint8 `Tensor` features, so
reading needs no image codec. With `resize="encoded"` the images keep their size and their
encoded bytes instead (an `Image` feature of any size): the trainer crops and resizes each view
from the whole image on the host, as for ImageNet (jax_ssl/data/host_views.py); a file is
stored as it is when that path decodes it as it is (a JPEG in RGB or grayscale, or a PNG,
without an EXIF rotation), re-encoded otherwise (rotated; JPEG quality 95 for a JPEG, PNG for
the rest). Files that are not readable images, and files outside the class folders, are
skipped and reported by name, never silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shlex
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageOps

from jax_ssl.errors import ConfigError, DataError

# How images of any size become one image_size x image_size shape ("none": keep the size; all
# images must then share it; "encoded": keep each file's size and encoded bytes).
RESIZE_MODES = ("shorter_side_center_crop", "stretch", "pad", "none", "encoded")
_EXIF_ORIENTATION, _SWAPPING_ORIENTATIONS = 0x0112, (5, 6, 7, 8)


@dataclasses.dataclass(frozen=True)
class Layout:
  """What a source folder holds: class names (empty: unlabelled) and files per split."""
  class_names: tuple[str, ...]
  files: dict[str, list[tuple[str, int]]]  # split -> [(path relative to the source, label)]
  outside: list[str]  # files not in a class folder (labelled layouts): skipped


def scan(source: str, *, test_fraction: float, seed: int = 0) -> Layout:
  """Lists the files of `source` by split and class (see the module docstring)."""
  if not os.path.isdir(source):
    raise DataError(f"--source {source} is not a folder")
  if os.path.isdir(os.path.join(source, "train")):
    class_names, files = None, {}
    outside = [name for name in _visible(source) if name not in ("train", "test")]
    for split in ("train", "test"):
      if os.path.isdir(os.path.join(source, split)):
        names, pairs, loose = _scan_split(os.path.join(source, split), class_names)
        class_names = names if class_names is None else class_names
        files[split] = [(os.path.join(split, path), label) for path, label in pairs]
        outside += [os.path.join(split, path) for path in loose]
  else:
    class_names, pairs, outside = _scan_split(source, None)
    files = (_hold_out(pairs, test_fraction, seed) if class_names and test_fraction > 0
             else {"train": pairs})
  if not any(files.values()):
    raise DataError(f"no image files in {source}: put images in it (or in one subfolder per class)")
  return Layout(class_names, files, sorted(outside))


def _visible(folder: str) -> list[str]:
  return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def _scan_split(root: str, class_names: tuple[str, ...] | None):
  """(class names, [(path relative to root, label)], files outside class folders) of `root`;
  `class_names` are train/'s when `root` is test/ (None otherwise)."""
  names = _visible(root)
  folders = [n for n in names if os.path.isdir(os.path.join(root, n))]
  loose = [n for n in names if not os.path.isdir(os.path.join(root, n))]
  if class_names is None:
    class_names = tuple(folders)
  if set(folders) - set(class_names) or (class_names and not folders):
    raise DataError(f"{root} has class folders {folders} but train/ has {list(class_names)}; use "
                    f"the same class folders (or none) in train/ and test/")
  if not class_names:  # flat: unlabelled
    return (), [(name, -1) for name in loose], []
  pairs = []
  for folder in folders:
    for directory, subdirs, files in os.walk(os.path.join(root, folder)):
      subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
      pairs += [(os.path.relpath(os.path.join(directory, f), root), class_names.index(folder))
                for f in sorted(files) if not f.startswith(".")]
  return class_names, pairs, loose


def _hold_out(pairs, fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
  """round(fraction * n) files of each class (a fixed random choice) -> test, the rest -> train."""
  rng = np.random.default_rng(seed)
  train, test = [], []
  for label in sorted({label for _, label in pairs}):
    members = sorted(p for p in pairs if p[1] == label)
    chosen = set(rng.permutation(len(members))[:round(fraction * len(members))].tolist())
    for index, pair in enumerate(members):
      (test if index in chosen else train).append(pair)
  return {"train": train, "test": test} if test else {"train": train}


def load_image(path: str, *, image_size: int, resize: str, channels: int) -> np.ndarray:
  """Decodes `path` to uint8 [H, W, channels], resized by `resize` (see RESIZE_MODES)."""
  with Image.open(path) as image:
    image = ImageOps.exif_transpose(image).convert("RGB" if channels == 3 else "L")
  size = (image_size, image_size)
  if resize == "shorter_side_center_crop":  # shorter side to image_size, center crop
    image = ImageOps.fit(image, size, Image.Resampling.BICUBIC)
  elif resize == "stretch":
    image = image.resize(size, Image.Resampling.BICUBIC)
  elif resize == "pad":  # longer side to image_size, black borders
    image = ImageOps.pad(image, size, Image.Resampling.BICUBIC, color=0)
  array = np.asarray(image, np.uint8)
  return array[..., None] if array.ndim == 2 else array


def encoded_image(path: str, *, channels: int) -> bytes:
  """The file's bytes for `resize="encoded"`: as they are when the host path decodes them as
  they are (a JPEG in RGB or grayscale, or a PNG; no EXIF rotation), else re-encoded with the
  rotation applied (JPEG quality 95 for a JPEG source, PNG otherwise). Raises if unreadable."""
  with open(path, "rb") as f:
    data = f.read()
  with Image.open(io.BytesIO(data)) as image:
    image.load()  # a truncated or garbled file raises here, at prepare time
    rotated = image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    if not rotated and ((image.format == "JPEG" and image.mode in ("RGB", "L"))
                        or image.format == "PNG"):
      return data
    fmt = "JPEG" if image.format == "JPEG" else "PNG"
    image = ImageOps.exif_transpose(image).convert("RGB" if channels == 3 else "L")
  out = io.BytesIO()
  image.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
  return out.getvalue()


def _common_size(source: str, layout: Layout) -> tuple[int, int]:
  """(height, width) shared by every readable image (for resize='none'), else DataError."""
  examples: dict[tuple[int, int], str] = {}
  for path, _ in (pair for pairs in layout.files.values() for pair in pairs):
    try:
      with Image.open(os.path.join(source, path)) as image:
        width, height = image.size
        if image.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
          width, height = height, width
    except Exception:  # pylint: disable=broad-except  # reported when the file is decoded
      continue
    examples.setdefault((height, width), path)
  if len(examples) > 1:
    sizes = ", ".join(f"{path} is {w}x{h}" for (h, w), path in list(examples.items())[:3])
    raise DataError(f"--resize none needs images of one size, but {len(examples)} sizes occur "
                    f"({sizes}); choose --resize {'/'.join(RESIZE_MODES[:3])} and --image_size")
  if not examples:
    raise DataError(f"no readable image in {source}")
  return next(iter(examples))


class FolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """What a folder of files built as a TFDS dataset named `name` shares (image folders here,
  video folders in video_folder.py): the layout's splits, nothing downloaded, unreadable
  files skipped and reported through `on_skip`. A subclass sets `FEATURE` (the record key)
  and defines `_info` and `_load(path) -> value` (raising on an unreadable file)."""

  FEATURE = "image"

  def __init__(self, *, name: str, source: str, layout: Layout, image_size: int, resize: str,
               channels: int, rebuild_command: str,
               on_skip: Callable[[str, str], None] | None = None, **kwargs):
    self.name = name  # per instance, as tfds.dataset_builders.AdhocBuilder does
    self._source, self._layout, self._channels = source, layout, channels
    self._image_size, self._resize, self._rebuild_command = image_size, resize, rebuild_command
    self.skipped: list[tuple[str, str]] = []  # (path relative to source, reason)
    self._on_skip = on_skip
    for path in layout.outside:
      self._skip(path, "not in a class folder")
    super().__init__(**kwargs)

  def _folder_info(self, key: str, feature: Any, description: str,
                   **metadata: Any) -> tfds.core.DatasetInfo:
    """The DatasetInfo of a folder dataset: `key`'s feature, the class label when the layout
    has classes (supervised (key, "label")), and the source, resize and rebuild command with
    `metadata` in its metadata."""
    features = {key: feature}
    if self._layout.class_names:
      features["label"] = tfds.features.ClassLabel(names=self._layout.class_names)
    return tfds.core.DatasetInfo(
        builder=self, description=description, features=tfds.features.FeaturesDict(features),
        supervised_keys=(key, "label") if self._layout.class_names else None,
        metadata=tfds.core.MetadataDict(source=self._source, resize=self._resize, **metadata,
                                        rebuild_command=self._rebuild_command))

  def _skip(self, path: str, reason: str) -> None:
    self.skipped.append((path, reason))
    if self._on_skip is not None:
      self._on_skip(path, reason)

  # TFDS prints "Downloading and preparing dataset ..." and "... downloaded and prepared"
  # to stdout for every build; nothing is downloaded here, and prepare_data says what it built.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    return {split: self._generate_examples(split) for split, pairs in self._layout.files.items()
            if pairs}

  def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    count = 0
    for path, label in self._layout.files[split]:
      try:
        value = self._load(os.path.join(self._source, path))  # pylint: disable=no-member
      except Exception as e:  # pylint: disable=broad-except  # any undecodable file: skip, report
        self._skip(path, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}")
        continue
      count += 1
      yield path, ({self.FEATURE: value, "label": label} if self._layout.class_names
                   else {self.FEATURE: value})
    if not count:
      raise DataError(f"no readable {self.FEATURE} for split {split!r} in {self._source} "
                      f"({len(self._layout.files[split])} files, none readable: listed above)")


class Builder(FolderBuilder, skip_registration=True):
  """One image folder as a TFDS dataset named `name` (found by name in its data_dir)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Built by `python -m jax_ssl.prepare_data image_folder`."}

  def __init__(self, *, source: str, layout: Layout, image_size: int, resize: str,
               channels: int, **kwargs):
    self._shape = ((*_common_size(source, layout), channels) if resize == "none"
                   else (None, None, channels) if resize == "encoded"
                   else (image_size, image_size, channels))
    super().__init__(source=source, layout=layout, image_size=image_size, resize=resize,
                     channels=channels, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    feature = (tfds.features.Image(shape=self._shape) if self._resize == "encoded"
               else tfds.features.Tensor(shape=self._shape, dtype=np.uint8))
    return self._folder_info("image", feature,
                             f"Images from {self._source}, resize={self._resize}.")

  def _load(self, path: str):
    if self._resize == "encoded":
      return encoded_image(path, channels=self._channels)
    image = load_image(path, image_size=self._image_size, resize=self._resize,
                       channels=self._channels)
    if image.shape != self._shape:
      raise ValueError(f"{image.shape[1]}x{image.shape[0]}, not {self._shape[1]}x{self._shape[0]}")
    return image


def dataset_warnings(info: tfds.core.DatasetInfo) -> list[str]:
  """One-line warnings (without "warning: ") about a built image folder that trains but
  cannot be evaluated: fewer than 2 classes, or no test split. The trainer refuses to
  evaluate such a dataset (jax_ssl/config/data_checks.py)."""
  if "label" not in info.features:
    return []
  warnings = []
  names = list(info.features["label"].names)
  if len(names) < 2:
    warnings.append(f"{len(names)} class ({', '.join(names)}): the evaluation needs at least 2 "
                    f"(add a folder per class), so train with --config.evaluate=False")
  if "test" not in info.splits or not info.splits["test"].num_examples:
    warnings.append("no test split (--test_fraction holds out round(fraction x images) of each "
                    "class: none here): the evaluation needs one (use more images, a larger "
                    "--test_fraction, or train/ and test/ folders), so train with "
                    "--config.evaluate=False")
  return warnings


def build(source: str, *, name: str, data_dir: str, image_size: int = 64,
          resize: str = "shorter_side_center_crop", channels: int = 3, test_fraction: float = 0.1,
          overwrite: bool = False, on_skip: Callable[[str, str], None] | None = None) -> Builder:
  """Builds `source` as dataset `name` in `data_dir`; returns the builder.

  Files left out (unreadable, or outside the class folders) are passed to `on_skip(path,
  reason)` as they are met and listed in the builder's `skipped`. Raises ConfigError or
  DataError (one line) on bad input, e.g. when no file is a readable image.
  """
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
    raise ConfigError(f"--name {name!r}: use lower_snake_case (letters, digits, underscores)")
  try:
    tfds.builder_cls(name)
  except tfds.core.registered.DatasetNotFoundError:
    pass
  else:  # the trainer would look for TFDS's dataset of that name, not this one
    raise ConfigError(f"--name {name!r} is a TFDS dataset's name; choose another name")
  if resize not in RESIZE_MODES:
    raise ConfigError(f"--resize {resize!r}; choose one of {list(RESIZE_MODES)}")
  if image_size <= 0 and resize not in ("none", "encoded"):
    raise ConfigError(f"--image_size {image_size}; must be a positive number of pixels")
  if channels not in (1, 3):
    raise ConfigError(f"--channels {channels}; use 3 (RGB) or 1 (grayscale)")
  if not 0 <= test_fraction < 1:
    raise ConfigError(f"--test_fraction {test_fraction}; must be in [0, 1)")
  source, data_dir = os.path.abspath(source), os.path.abspath(data_dir)
  layout = scan(source, test_fraction=test_fraction)
  command = " ".join([
      "python -m jax_ssl.prepare_data image_folder", f"--source {shlex.quote(source)}",
      f"--name {name}", f"--data_dir {shlex.quote(data_dir)}", f"--image_size {image_size}",
      f"--resize {resize}", f"--channels {channels}", f"--test_fraction {test_fraction}",
      "--overwrite"])
  builder = Builder(name=name, source=source, layout=layout, image_size=image_size, resize=resize,
                    channels=channels, rebuild_command=command, on_skip=on_skip, data_dir=data_dir,
                    file_format="array_record")
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
