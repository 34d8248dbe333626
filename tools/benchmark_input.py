r"""The host input path alone: img/s of the views of an experiment file made from a folder of
real-size JPEGs, with grain worker processes, against the old path on the same files.

  python tools/benchmark_input.py --config experiments/imagenet/simclr_resnet50.py \
      [--folder DIR] [--size 500x375] [--workers 2] [--reference] [--markdown OUT.md]
      [--set augment.local_crops.num=6 ...]

The views are the experiment's (`augment`: its global views and local crops); the path is the
trainer's for variable-size data (jax_ssl/data/pipeline.py `train_iterator` with host views:
crop boxes over the whole image, a DCT-scaled decode, a resize per view, uint8 batches) with
`--workers` grain worker processes (0: `--read_threads` threads of this process). With
`--reference`, the same files through the old path in the same run and the same workers:
a full PIL decode, the shorter side resized to 256 (bicubic) and the centre 256 x 256 kept.

Without `--folder`, `--num_images` JPEGs of `--size` (quality 90) are made once from the
photos of `skimage.data` (astronaut, coffee, chelsea, rocket, ...), each a random crop of
one of them scaled to the size, and kept in ~/.cache/jax_ssl/benchmark_input/<size>/.

Each path is measured `--rounds` times, alternating, and the medians printed: img/s and img/s
per worker; the last line is one JSON object: `images_per_second`,
`images_per_second_per_worker`, `workers`, `views`, `image_size` and, with --reference,
`reference_images_per_second` and `speedup`. Timings are what they are on the machine, never
asserted: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jax_ssl import config as config_lib  # noqa: E402
from jax_ssl.config import load as config_load  # noqa: E402
from jax_ssl.data import host_views, pipeline  # noqa: E402
from jax_ssl.evaluate import host  # noqa: E402

_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle_left")
REFERENCE_SIZE = 256  # the old path's host resize (dataset.image_size)


def make_photos(folder: str, count: int, width: int, height: int, seed: int = 0) -> None:
  """`count` JPEGs (quality 90) of width x height in `folder`: random crops of skimage.data
  photos (at the target aspect, at least half of the photo's shorter side) scaled to the size."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  sources = []
  for name in _PHOTOS:
    loader = getattr(skimage.data, name, None)
    if name == "motorcycle_left":
      image = skimage.data.stereo_motorcycle()[0]
    elif loader is not None:
      image = loader()
    else:
      continue
    if image.ndim == 3 and image.shape[-1] == 3:
      sources.append(np.asarray(image, np.uint8))
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  for index in range(count):
    photo = sources[index % len(sources)]
    photo_h, photo_w = photo.shape[:2]
    aspect = width / height
    crop_h = int(rng.uniform(0.5, 1.0) * min(photo_h, photo_w / aspect))
    crop_w = int(crop_h * aspect)
    top = int(rng.integers(0, photo_h - crop_h + 1))
    left = int(rng.integers(0, photo_w - crop_w + 1))
    image = Image.fromarray(photo[top:top + crop_h, left:left + crop_w])
    if rng.random() < 0.5:
      image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image.resize((width, height), Image.Resampling.BICUBIC).save(
        os.path.join(folder, f"photo_{index:04d}.jpg"), quality=90)


class EncodedFiles:
  """A random-access source of `{"image": JPEG bytes, "label": 0}` records (picklable: worker
  processes get the bytes)."""

  def __init__(self, files: list[bytes]):
    self.files = files

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> dict:
    return {"image": self.files[int(index)], "label": 0}


class DecodedFiles(EncodedFiles):
  """The old path's records: the whole image decoded by PIL (as TFDS's numpy decoding)."""

  def __getitem__(self, index: int) -> dict:
    with Image.open(io.BytesIO(self.files[int(index)])) as image:
      return {"image": np.asarray(image.convert("RGB")), "label": 0}


def images_per_second(iterator, *, batch_size: int, warmup: int, batches: int) -> float:
  for _ in range(warmup):  # worker start-up and the first batches in flight
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  seconds = time.perf_counter() - start
  if hasattr(iterator, "close"):
    iterator.close()
  return batches * batch_size / seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="experiment file PATH[:ARG] (its views)")
  parser.add_argument("--folder", default=None, help="folder of JPEGs (default: generated)")
  parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of generated JPEGs")
  parser.add_argument("--num_images", type=int, default=128, help="generated JPEGs")
  parser.add_argument("--workers", type=int, default=1, help="grain worker processes (0: threads)")
  parser.add_argument("--read_threads", type=int, default=1,
                      help="threads per process doing the work (dataset.read_threads)")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--batches", type=int, default=20, help="timed batches")
  parser.add_argument("--warmup", type=int, default=4, help="untimed batches first")
  parser.add_argument("--rounds", type=int, default=3,
                      help="measurements of each path, alternating; medians reported")
  parser.add_argument("--reference", action="store_true",
                      help="also time the old full-decode + resize + centre-crop path")
  parser.add_argument("--markdown", default=None,
                      help="append a Markdown table row to this file (a header first if empty)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override, as --config.KEY=VALUE of the trainer")
  args = parser.parse_args()

  config = config_load.load_experiment(args.config)
  config = config_lib.Experiment.from_config(config_load.apply_overrides(
      config, config_load.split_overrides([f"--config.{item}" for item in args.set])[1]))
  views = host_views.host_views_of(config_lib.view_configs(config))
  width, height = (int(v) for v in args.size.lower().split("x"))
  folder = args.folder or os.path.join(os.path.expanduser("~/.cache/jax_ssl/benchmark_input"),
                                       f"{width}x{height}")
  paths = sorted(p for p in glob.glob(os.path.join(folder, "*"))
                 if p.lower().endswith((".jpg", ".jpeg")))
  if not paths and args.folder is None:
    make_photos(folder, args.num_images, width, height)
    paths = sorted(glob.glob(os.path.join(folder, "*.jpg")))
  if not paths:
    sys.exit(f"error: no .jpg/.jpeg files in {folder}")
  files = [open(p, "rb").read() for p in paths]
  first_width, first_height = Image.open(io.BytesIO(files[0])).size

  common = dict(local_batch_size=args.batch_size, seed=0, process_index=0, process_count=1,
                read_threads=args.read_threads, prefetch_buffer_size=max(2, args.read_threads),
                num_workers=args.workers, worker_buffer_size=2)
  measure = lambda iterator: images_per_second(iterator, batch_size=args.batch_size,
                                               warmup=args.warmup, batches=args.batches)
  # Rounds alternate the two paths (fresh iterators and workers each time); the medians are
  # reported, so that a drift of the machine's load affects both alike.
  rates, references = [], []
  for _ in range(args.rounds):
    rates.append(measure(pipeline.train_iterator(EncodedFiles(files), host_views=views,
                                                 channels=3, **common)))
    if args.reference:
      references.append(measure(pipeline.train_iterator(
          DecodedFiles(files), image_size=REFERENCE_SIZE, **common)))
  rate = float(np.median(rates))
  per_worker = rate / max(1, args.workers)
  view_text = " + ".join(f"{n}x{s}" for s, n in _count_sizes(views))
  result = {"images_per_second": round(rate, 1),
            "images_per_second_per_worker": round(per_worker, 1), "workers": args.workers,
            "read_threads": args.read_threads, "views": view_text,
            "image_size": f"{first_width}x{first_height}",
            "files": len(files), "config": args.config, "cpu": host.cpu_model(),
            "cpu_count": os.cpu_count(), "rounds": args.rounds,
            "load_average": round(os.getloadavg()[0], 2)}
  print(f"host views ({view_text}) of {len(files)} {result['image_size']} JPEGs, "
        f"{args.workers} workers x {args.read_threads} threads: {rate:.1f} img/s, "
        f"{per_worker:.1f} img/s per worker")
  if args.reference:
    reference = float(np.median(references))
    result["reference_images_per_second"] = round(reference, 1)
    result["speedup"] = round(rate / reference, 2)
    print(f"reference (full decode, resize {REFERENCE_SIZE}, centre crop): {reference:.1f} img/s, "
          f"{reference / max(1, args.workers):.1f} img/s per worker; host views "
          f"{rate / reference:.2f}x")
  if args.markdown:
    if not os.path.exists(args.markdown) or not os.path.getsize(args.markdown):
      with open(args.markdown, "w") as f:
        f.write("| config | views | JPEGs | workers | img/s | img/s per worker | reference img/s "
                "| speedup | cpu |\n|---|---|---|---|---|---|---|---|---|\n")
    with open(args.markdown, "a") as f:
      f.write(f"| {args.config} | {view_text} | {result['image_size']} | {args.workers} | "
              f"{rate:.0f} | {per_worker:.0f} | "
              f"{result.get('reference_images_per_second', '—')} | {result.get('speedup', '—')} | "
              f"{result['cpu']} |\n")
  print(json.dumps(result))


def _count_sizes(views) -> list[tuple[int, int]]:
  counts: dict[int, int] = {}
  for view in views:
    counts[view.output_size] = counts.get(view.output_size, 0) + 1
  return list(counts.items())


if __name__ == "__main__":
  main()
