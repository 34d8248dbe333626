r"""Builds a dataset the trainer can name: `python -m jax_ssl.prepare_data image_folder ...`.

  python -m jax_ssl.prepare_data image_folder --source DIR --name NAME [--data_dir D]
      [--image_size 64] [--resize shorter_side_center_crop|stretch|pad|none|encoded] [--channels 3]
      [--test_fraction 0.1] [--overwrite]

turns a folder of images (class subfolders = labels; a flat folder = unlabelled; train/ and
test/ subfolders = given splits; see jax_ssl/data/image_folder.py) into an array_record TFDS
dataset in D/NAME/1.0.0 (`--resize encoded`: each image at its own size, its encoded bytes
kept, for the host crops of the ImageNet experiments: `--config
experiments/imagenet/<method>.py --config.dataset.name=NAME`). Any experiment then trains on it with
`--config.dataset.name=NAME --config.dataset.data_dir=D`. Unreadable files are listed and
skipped; the command fails with one line if no image is readable, and warns in one line if
the dataset trains but cannot be evaluated (one class, no test split). Relative paths are
relative to the current directory (the printed ones are absolute). Quiet by default (absl
verbosity WARNING, no TFDS progress bars); `--verbosity 0` shows TFDS's INFO lines.
D is a local folder: array_record writes local files only. To train from a bucket, copy
D/NAME there (`gcloud storage cp -r D/NAME gs://bucket/tfds/`) and pass
`--config.dataset.data_dir=gs://bucket/tfds`.

  python -m jax_ssl.prepare_data video_folder --source DIR --name NAME [--data_dir D]
      [--image_size 64] [--resize shorter_side_center_crop|stretch|pad] [--channels 3]
      [--fps 0] [--num_frames 0] [--test_fraction 0.1] [--overwrite]

does the same for a folder of videos (the same layouts; decoded with PyAV, the `video` extra;
see jax_ssl/data/video_folder.py): records {"video": uint8 [N, S, S, C], "label"}, every frame
resized at prepare time (default: shorter side to S = --image_size, centre crop), at most
--fps frames a second and --num_frames frames a video (0: all). Undecodable files are listed
and skipped as for images.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
import tensorflow_datasets as tfds

from jax_ssl import fs
from jax_ssl.config.paths import absolute_path
from jax_ssl.data import image_folder, pipeline, video_folder
from jax_ssl.errors import UserInputError

_SOURCE = flags.DEFINE_string("source", None,
                              "Folder of images or videos (class subfolders = labels).")
_NAME = flags.DEFINE_string("name", None, "Dataset name (lower_snake_case) for dataset.name.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR or "
                                "~/tensorflow_datasets); pass the same as dataset.data_dir.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Stored images are image_size x image_size.")
_RESIZE = flags.DEFINE_enum("resize", "shorter_side_center_crop", list(image_folder.RESIZE_MODES),
                            "shorter_side_center_crop: shorter side to image_size, center crop; "
                            "stretch: ignore the aspect ratio; pad: longer side to image_size, "
                            "black borders; none: keep the size (all images must share it); "
                            "encoded: keep each image's size and encoded bytes (views cropped "
                            "from the whole image at training time, as ImageNet's).")
_CHANNELS = flags.DEFINE_integer("channels", 3, "3 (RGB) or 1 (grayscale).")
_TEST_FRACTION = flags.DEFINE_float(
    "test_fraction", 0.1, "Share of each class held out as `test` when there is no test/ folder.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Rebuild NAME if it already exists.")
_FPS = flags.DEFINE_float("fps", 0.0, "video_folder: at most this many frames a second "
                          "(0: the video's own rate).")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 0, "video_folder: at most this many frames "
                                   "a video, from its start (0: all).")

_USAGE = ("usage: python -m jax_ssl.prepare_data image_folder|video_folder --source DIR "
          "--name NAME [--data_dir D]")


def main(argv):
  if (argv[1:] not in (["image_folder"], ["video_folder"]) or _SOURCE.value is None
      or _NAME.value is None):
    raise app.UsageError(_USAGE)
  if not flags.FLAGS["verbosity"].present:  # TFDS logs every file it writes at INFO
    logging.set_verbosity(logging.WARNING)
    tfds.disable_progress_bar()
    # TFDS warns "Variant folder D/NAME/1.0.0 has no dataset_info.json" while building it.
    logging.get_absl_logger().addFilter(
        lambda record: "has no dataset_info.json" not in record.getMessage())
  if fs.is_url(_DATA_DIR.value) or fs.is_url(_SOURCE.value):
    flag, value = (("--data_dir", _DATA_DIR.value) if fs.is_url(_DATA_DIR.value)
                   else ("--source", _SOURCE.value))
    sys.exit(f"error: {flag} {value}: prepare_data reads and writes local folders only "
             f"(array_record writes local files); build into a local --data_dir D, copy D/"
             f"{_NAME.value} to the bucket (gcloud storage cp -r) and train with "
             f"--config.dataset.data_dir=<the bucket folder>")
  data_dir = absolute_path(_DATA_DIR.value or pipeline.default_data_dir())
  skipped = []

  def report(path: str, reason: str) -> None:
    skipped.append(path)
    print(f"skipped {path}: {reason}", flush=True)

  try:
    if argv[1] == "video_folder":
      builder = video_folder.build(
          absolute_path(_SOURCE.value), name=_NAME.value, data_dir=data_dir,
          image_size=_IMAGE_SIZE.value, resize=_RESIZE.value, channels=_CHANNELS.value,
          fps=_FPS.value, num_frames=_NUM_FRAMES.value, test_fraction=_TEST_FRACTION.value,
          overwrite=_OVERWRITE.value, on_skip=report)
    else:
      builder = image_folder.build(
          absolute_path(_SOURCE.value), name=_NAME.value, data_dir=data_dir,
          image_size=_IMAGE_SIZE.value, resize=_RESIZE.value, channels=_CHANNELS.value,
          test_fraction=_TEST_FRACTION.value, overwrite=_OVERWRITE.value, on_skip=report)
  except UserInputError as e:
    if skipped:
      print(f"{len(skipped)} files skipped (listed above)", flush=True)
    sys.exit(f"error: {e}")
  info = builder.info
  if argv[1] == "video_folder":
    if skipped:
      print(f"{len(skipped)} files skipped (listed above)")
    print(f"built {builder.name!r} in {builder.data_dir}: {video_folder.describe(info)}")
    for warning in image_folder.dataset_warnings(info):
      print(f"warning: {warning}")
    print(f"train on it with --config.dataset.name={builder.name} "
          f"--config.dataset.data_dir={data_dir}")
    return
  splits = ", ".join(f"{split} {info.splits[split].num_examples}" for split in sorted(info.splits,
                                                                                      reverse=True))
  height, width, channels = info.features["image"].shape
  size = "any size" if height is None else f"{height}x{width}x{channels}"
  if "label" in info.features:
    names = info.features["label"].names
    labels = f"{len(names)} class{'es' if len(names) != 1 else ''} ({', '.join(names)})"
  else:
    labels = "unlabelled (pretraining only)"
  if skipped:
    print(f"{len(skipped)} files skipped (listed above)")
  print(f"built {builder.name!r} in {builder.data_dir}: {splits} images of "
        f"{size}{f' with {channels} channels' if height is None else ''}, {labels}")
  for warning in image_folder.dataset_warnings(info):
    print(f"warning: {warning}")
  print(f"train on it with --config.dataset.name={builder.name} --config.dataset.data_dir={data_dir}")


if __name__ == "__main__":
  app.run(main)
