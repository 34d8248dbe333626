"""Host geometry of the views of variable-size encoded images (ImageNet, image folders kept
encoded): crop boxes over the whole image, a decode at the smallest scale that suffices, a
resize to each view's size, uint8 out. The photometric ops (flip, colour jitter, grayscale,
blur, solarize) stay on device (`augment.photometric_batch`).

For one example with views v = 1..V (the method's global views, then its local crops):

 1. The image's size (H, W) is read from its header; each view's box is torchvision's
    RandomResizedCrop box over the WHOLE image (area fraction ~ U[crop_scale], log-uniform
    w / h in crop_ratio, 10 tries, then the central crop of the closest ratio; integer boxes).
 2. The image is decoded once, at the smallest libjpeg-turbo DCT scale n/8 that keeps every
    box at least its view's size in both dimensions (simplejpeg's `min_height/min_width`;
    PIL's `draft`, which offers 1/1, 1/2, 1/4 and 1/8, when simplejpeg is not installed):
    a 96 px local crop of a 1000x750 photo is decoded at 1/4 or 1/8 of the pixels. Other
    formats (PNG, ...) and already-decoded arrays are used at full size. No crop-window
    decoding: the views of an example share one decode, and their boxes together cover most
    rows of the image.
 3. Each box (scaled to the decoded image) is resized to S_v x S_v, [S_v, S_v, C] uint8, by
    the view's `resize` (`dataset.host_resize`):
    * "opencv" (the default): OpenCV's bilinear sampling of the box (half-pixel centres:
      big_vision's inception crop, `tf.image.resize(..., "bilinear")` of the crop), a box
      more than twice the view's side first halved by OpenCV's Gaussian pyramid
      (antialiasing; `resize_box_opencv`). 0.25 ms for a 300 px box to 224 px on one core,
      against PIL's 0.9 (measured on a 2-vCPU AMD EPYC with AVX2).
    * "pil": the fractional box resized by PIL's bilinear resize with its antialiasing
      support (torchvision's RandomResizedCrop default); runs saved before the key existed.
    Views are written straight into the batch's arrays (`make_views(..., out=)`): no copy
    per view afterwards.

Randomness: view v of the example at position `index` of the global stream (epoch e,
position i: index = e * N + i, grain's `map_with_index`) draws its box from
`numpy.random.default_rng([seed, _HOST_STREAM, index, v])`: the crops of a step do not
depend on the number of processes, devices or worker processes, and a resumed run (the grain
iterator restored to its position) draws the same crops.

Measured with `tools/benchmark_input.py` (BENCHMARKS.md).

References:
 torchvision.transforms.RandomResizedCrop.get_params (the box); libjpeg-turbo's DCT scaling
 (`scale_num / scale_denom`), as in tf.image.decode_and_crop_jpeg users and DALI's
 ImageDecoderRandomCrop, which also decode less than the whole image for each crop.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

try:  # libjpeg-turbo with every n/8 DCT scale; PIL's draft (1, 1/2, 1/4, 1/8) otherwise.
  import simplejpeg
except ImportError:  # pragma: no cover  (the [train] extra installs it)
  simplejpeg = None

RESIZES = ("opencv", "pil")  # dataset.host_resize

_HOST_STREAM = 0x686F7374  # "host": keeps these streams apart from any other seeded by `seed`
_JPEG_MAGIC = b"\xff\xd8"


@dataclasses.dataclass(frozen=True)
class HostView:
  """What the host needs of one view: its output side and the random resized crop's ranges.

  Attributes:
   output_size: side S of the square view.
   crop_scale: range of the box area as a fraction of the image area.
   crop_ratio: range of the box's width / height, sampled log-uniformly.
   resize: how the box becomes S x S, one of RESIZES (module doc, step 3).
  """
  output_size: int
  crop_scale: tuple[float, float] = (0.08, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  resize: str = "opencv"


def host_views_of(configs: Sequence[Any], resize: str = "opencv") -> tuple[HostView, ...]:
  """The geometry of `augment.AugmentConfig`s (one per view), for the host, each resized by
  `resize` (one of RESIZES)."""
  if resize not in RESIZES:
    raise ValueError(f"dataset.host_resize={resize!r}; use one of {RESIZES}")
  return tuple(HostView(c.output_size, tuple(c.crop_scale), tuple(c.crop_ratio), resize)
               for c in configs)


def opencv():
  """The cv2 module, or one line naming the fix when it is not installed."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("dataset.host_resize='opencv' needs OpenCV: pip install "
                      "opencv-python-headless (in the [train] extra), or set "
                      "--config.dataset.host_resize=pil") from e
  return cv2


def view_rng(seed: int, index: int, view: int) -> np.random.Generator:
  """The generator of view `view` of the example at position `index` of the global stream."""
  return np.random.default_rng([int(seed) % 2**63, _HOST_STREAM, int(index), int(view)])


def crop_box(rng: np.random.Generator, height: int, width: int, scale: tuple[float, float],
             ratio: tuple[float, float]) -> tuple[int, int, int, int]:
  """torchvision's RandomResizedCrop box (top, left, box_height, box_width) of an H x W image.

  Up to 10 draws of area ~ U[scale] * H * W and w / h ~ exp(U[log ratio]); the first box that
  fits is placed uniformly; if none fits, the central box of the whole image's width or height
  at the nearest allowed ratio.
  """
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    box_width = int(round(math.sqrt(target_area * aspect)))
    box_height = int(round(math.sqrt(target_area / aspect)))
    if 0 < box_width <= width and 0 < box_height <= height:
      top = int(rng.integers(0, height - box_height + 1))
      left = int(rng.integers(0, width - box_width + 1))
      return top, left, box_height, box_width
  in_ratio = width / height
  if in_ratio < min(ratio):
    box_width, box_height = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    box_height, box_width = height, int(round(height * max(ratio)))
  else:
    box_width, box_height = width, height
  return (height - box_height) // 2, (width - box_width) // 2, box_height, box_width


def encoded_size(data: bytes) -> tuple[int, int]:
  """(height, width) of an encoded image, from its header (nothing is decoded)."""
  if simplejpeg is not None and data[:2] == _JPEG_MAGIC:
    try:
      height, width = simplejpeg.decode_jpeg_header(data)[:2]
      return int(height), int(width)
    except ValueError:  # e.g. a JPEG libjpeg-turbo refuses: PIL may still read it
      pass
  with Image.open(io.BytesIO(data)) as image:
    return image.height, image.width


def decode_image(data: bytes, *, channels: int, min_height: int = 0, min_width: int = 0
                 ) -> Image.Image:
  """Decodes to a PIL image (RGB, or L for channels=1), at the smallest DCT scale (JPEG)
  keeping height >= min_height and width >= min_width (0: full size); other formats at full
  size. A JPEG decoded by simplejpeg becomes an RGBX image over the decoder's own buffer (no
  copy: PIL keeps RGB as 4 bytes a pixel; a quarter less time per SimCLR example, measured)."""
  if data[:2] == _JPEG_MAGIC:
    if simplejpeg is not None:
      try:
        array = simplejpeg.decode_jpeg(data, colorspace="RGBX" if channels == 3 else "GRAY",
                                       min_height=min_height, min_width=min_width)
        mode = "RGBX" if channels == 3 else "L"
        return Image.frombuffer(mode, (array.shape[1], array.shape[0]), array, "raw", mode, 0, 1)
      except ValueError:  # CMYK and other JPEGs libjpeg-turbo will not convert: PIL below
        pass
  with Image.open(io.BytesIO(data)) as image:
    if data[:2] == _JPEG_MAGIC and (min_height or min_width):
      # PIL's draft picks the smallest of 1/1, 1/2, 1/4, 1/8 at least this size.
      image.draft("RGB" if channels == 3 else "L", (max(min_width, 1), max(min_height, 1)))
    return image.convert("RGB" if channels == 3 else "L")


def _to_array(image: Image.Image) -> np.ndarray:
  """uint8 [H, W, C] of an RGB, RGBX or L image."""
  array = np.asarray(image)
  if array.ndim == 2:
    return array[..., None]
  return array[..., :3] if image.mode == "RGBX" else array


def decode(data: bytes, *, channels: int, min_height: int = 0, min_width: int = 0) -> np.ndarray:
  """`decode_image` as uint8 [h, w, channels]."""
  return np.ascontiguousarray(_to_array(decode_image(data, channels=channels,
                                                     min_height=min_height, min_width=min_width)))


def decode_size_needed(boxes: Sequence[tuple[int, int, int, int]], views: Sequence[HostView],
                       height: int, width: int) -> tuple[int, int]:
  """(min_height, min_width) of the decoded image that keeps every box at least its view's
  size S_v in both dimensions: the image scaled by max_v S_v / min(box_h, box_w), at most 1."""
  factor = max(view.output_size / min(box[2], box[3]) for box, view in zip(boxes, views))
  factor = min(1.0, factor)
  return math.ceil(factor * height), math.ceil(factor * width)


def decoded_scale(decoded: tuple[int, int], height: int, width: int) -> float:
  """The DCT scale n/8 that decoded an H x W JPEG to `decoded` = (ceil(H n / 8), ceil(W n / 8)).

  Boxes are mapped with n/8 itself, not decoded / original: the last block row or column of a
  scaled decode is partial (ceil), and the ratio would shift a 1/8 decode's boxes by up to
  half a pixel (5x the error of the decode against full decode + resize, measured)."""
  for n in range(8, 0, -1):
    if (math.ceil(height * n / 8), math.ceil(width * n / 8)) == tuple(decoded):
      return n / 8
  return decoded[0] / height  # not a DCT scale (cannot happen with libjpeg): the ratio


def decode_array(data: bytes, *, channels: int, min_height: int = 0, min_width: int = 0
                 ) -> np.ndarray:
  """Like `decode` with no copy where it can: simplejpeg's RGB or GRAY buffer as it is
  (uint8 [h, w, channels])."""
  if simplejpeg is not None and data[:2] == _JPEG_MAGIC:
    try:
      array = simplejpeg.decode_jpeg(data, colorspace="RGB" if channels == 3 else "GRAY",
                                     min_height=min_height, min_width=min_width)
      return array if array.ndim == 3 else array[..., None]
    except ValueError:  # CMYK and other JPEGs libjpeg-turbo will not convert: PIL below
      pass
  return decode(data, channels=channels, min_height=min_height, min_width=min_width)


def resize_box_opencv(image: np.ndarray, box: tuple[float, float, float, float], size: int,
                      out: np.ndarray | None = None) -> np.ndarray:
  """The box (top, left, box_height, box_width; fractional allowed) of uint8 [H, W, C]
  `image` resized to [size, size, C] by OpenCV, written into `out` (uint8 [size, size, C])
  when given: each output pixel (x, y) bilinearly sampled at (left + (x + 1/2) w / size - 1/2,
  top + (y + 1/2) h / size - 1/2) (`cv2.warpAffine`, half-pixel centres: `tf.image.resize` /
  `crop_and_resize` of the exact box, big_vision's inception crop). A box more than twice the
  output's side is first halved by OpenCV's Gaussian pyramid (`cv2.pyrDown`, with a margin
  around the box) until it is not, so that the sampling never skips pixels (antialiasing;
  a linear ramp stays exact through it). A box on the pixel grid takes `cv2.resize` instead,
  the same sampling in half the time."""
  cv2 = opencv()
  height, width, channels = image.shape
  top, left, box_height, box_width = box
  if out is None:
    out = np.empty((size, size, channels), np.uint8)
  plane = image[..., 0] if channels == 1 else image  # OpenCV reads [H, W, 1] as 2-D
  if max(box_height, box_width) > 2 * size:
    margin = 8
    y0, x0 = max(0, int(math.floor(top)) - margin), max(0, int(math.floor(left)) - margin)
    y1 = min(height, int(math.ceil(top + box_height)) + margin)
    x1 = min(width, int(math.ceil(left + box_width)) + margin)
    plane, top, left = plane[y0:y1, x0:x1], top - y0, left - x0
    while max(box_height, box_width) > 2 * size:
      # pyrDown's pixel j is centred on pixel 2j: continuous u -> (u + 1/2) / 2
      plane = cv2.pyrDown(plane)
      top, left = (top + 0.5) / 2, (left + 0.5) / 2
      box_height, box_width = box_height / 2, box_width / 2
  if all(float(v).is_integer() for v in (top, left, box_height, box_width)):
    # A box on the pixel grid (a full-size decode): the same sampling by cv2.resize of the
    # box, half the time of warpAffine's (its outermost half pixel clamped to the box).
    top, left, box_height, box_width = (int(v) for v in (top, left, box_height, box_width))
    result = cv2.resize(plane[top:top + box_height, left:left + box_width], (size, size),
                        interpolation=cv2.INTER_LINEAR)
  else:
    sy, sx = box_height / size, box_width / size
    matrix = np.array([[sx, 0.0, left + 0.5 * sx - 0.5], [0.0, sy, top + 0.5 * sy - 0.5]])
    result = cv2.warpAffine(plane, matrix, (size, size), flags=cv2.INTER_LINEAR
                            | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
  (out[..., 0] if channels == 1 else out)[...] = result
  return out


def resize_box(image: Image.Image, box: tuple[float, float, float, float], size: int) -> np.ndarray:
  """The box (top, left, box_height, box_width), in `image`'s pixels (fractional allowed),
  resized to [size, size, C] uint8 by PIL's antialiased bilinear resize."""
  top, left, box_height, box_width = box
  return _to_array(image.resize((size, size), Image.Resampling.BILINEAR,
                                box=(left, top, left + box_width, top + box_height)))


def make_views(image: bytes | np.ndarray, views: Sequence[HostView], *, seed: int, index: int,
               channels: int, out: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
  """The views of one example: [S_v, S_v, channels] uint8 for each view (see the module doc).

  Args:
   image: the encoded bytes (JPEG, PNG, ...) or a decoded uint8 [H, W, C] array.
   views: each view's size, crop ranges and resize.
   seed: the run's seed.
   index: the example's position in the global stream (grain's map_with_index index).
   channels: 3 (RGB) or 1 (grayscale) out.
   out: arrays to write the views into (uint8 [S_v, S_v, channels] each; a batch's rows),
     returned; None: new arrays.
  """
  if isinstance(image, np.ndarray) and image.dtype != np.uint8:
    raise ValueError(f"expected encoded bytes or a uint8 image, got {image.dtype}")
  encoded = not isinstance(image, np.ndarray)
  if encoded:
    image = bytes(image)
    height, width = encoded_size(image)
  else:
    height, width = image.shape[:2]
  boxes = [crop_box(view_rng(seed, index, v), height, width, view.crop_scale, view.crop_ratio)
           for v, view in enumerate(views)]
  resize = views[0].resize if views else "opencv"
  if any(view.resize != resize for view in views):
    raise ValueError(f"the views of an example share one resize, got {[v.resize for v in views]}")
  pil = resize == "pil"
  if encoded:
    min_height, min_width = decode_size_needed(boxes, views, height, width)
    decoded = (decode_image if pil else decode_array)(image, channels=channels,
                                                      min_height=min_height, min_width=min_width)
  else:
    if image.ndim == 2 or image.shape[-1] != channels:
      image = _to_channels(image, channels)
    decoded = Image.fromarray(image[..., 0] if channels == 1 else image) if pil else image
  scale = decoded_scale((decoded.height, decoded.width) if pil else decoded.shape[:2],
                        height, width)
  results = []
  for v, ((top, left, h, w), view) in enumerate(zip(boxes, views)):
    box = (top * scale, left * scale, h * scale, w * scale)
    target = None if out is None else out[v]
    if pil:
      result = resize_box(decoded, box, view.output_size)
      if target is not None:
        target[...] = result
        result = target
    else:
      result = resize_box_opencv(decoded, box, view.output_size, target)
    results.append(result)
  return tuple(results)


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  pil = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
  array = np.asarray(pil.convert("RGB" if channels == 3 else "L"))
  return array if array.ndim == 3 else array[..., None]


def full_decode(image: bytes | np.ndarray, channels: int) -> np.ndarray:
  """The whole image, uint8 [H, W, channels] (evaluation, the reference path)."""
  if isinstance(image, np.ndarray):
    image = image if image.ndim == 3 else image[..., None]
    return image if image.shape[-1] == channels else _to_channels(image, channels)
  return decode(bytes(image), channels=channels)


def evaluation_view(image: np.ndarray, shorter_side: int) -> np.ndarray:
  """Resize(shorter_side) + CenterCrop(shorter_side) of uint8 [H, W, C], as torchvision
  computes them (long side int(shorter_side * long / short), bicubic as DINO's and MAE's
  evaluation; crop offsets int(round((side - crop) / 2))), so that the device's central
  crop of 224 of these 256 px squares (`augment.center_view`, eval.crop_fraction 0.875) is
  torchvision's Resize(256, bicubic) + CenterCrop(224) pixel for pixel: both offsets round
  half to even, and (256 - 224) / 2 is even."""
  height, width = image.shape[:2]
  if (height, width) == (shorter_side, shorter_side):
    return image
  if height <= width:
    new_h, new_w = shorter_side, int(shorter_side * width / height)
  else:
    new_h, new_w = int(shorter_side * height / width), shorter_side
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  resized = np.asarray(pil.resize((new_w, new_h), Image.Resampling.BICUBIC))
  if resized.ndim == 2:
    resized = resized[..., None]
  top = int(round((new_h - shorter_side) / 2.0))
  left = int(round((new_w - shorter_side) / 2.0))
  return resized[top:top + shorter_side, left:left + shorter_side]
