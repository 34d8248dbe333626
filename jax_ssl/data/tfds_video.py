"""TFDS's video datasets (`ucf101`, `bair_robot_pushing_small`, ...) by name, without TensorFlow.

Two things stop `tfds.builder("ucf101")` where TensorFlow is not installed (checked with
tensorflow-datasets 4.9.10, which this project pins below 5):

1. Registration. TFDS imports its legacy dataset modules on the first name it does not know,
   in one loop that stops at the first module that fails to import
   (`tensorflow_datasets/core/registered.py`, `_import_legacy_builders`): `nearest_neighbors`
   needs h5py, so `tensorflow_datasets.video`, where UCF101 lives, is never imported and
   "Dataset ucf101 not found". `enable` imports that module itself.
2. `tfds.features.Video.__init__` converts its dtype with `tf.dtypes.as_dtype`
   (`core/features/video_feature.py`), the one TensorFlow call on the feature's read path:
   frames are decoded by `Image.decode_example_np` (OpenCV or PIL) in a data source. So the
   builder's `_info`, or the features.json of a prepared dataset, fails with "No module named
   'tensorflow'". Where TensorFlow is not installed, `enable` gives that module a `tf` whose
   `dtypes.as_dtype` is numpy's (`np.dtype`; Video's dtypes are uint8 and uint16) and whose
   other attributes are still TensorFlow's (imported lazily, as before): writing a Video
   dataset from video files needs TensorFlow and ffmpeg anyway, so build UCF101 where they
   are installed (`tfds build ucf101 --file_format array_record`) and copy it here.

Both take effect on the first use of a TFDS name (`pipeline._builder`), not on import.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
from typing import Any

import numpy as np


class _NumpyDtypes:
  as_dtype = staticmethod(np.dtype)


class _TensorFlowForVideo:
  """`tf` of TFDS's video feature module without TensorFlow: numpy's `dtypes.as_dtype`, every
  other attribute the lazily imported TensorFlow's (which raises as before)."""

  dtypes = _NumpyDtypes

  def __init__(self, lazy_tensorflow: Any):
    self._lazy_tensorflow = lazy_tensorflow

  def __getattr__(self, name: str) -> Any:
    return getattr(self._lazy_tensorflow, name)


@functools.cache
def enable() -> None:
  """Registers TFDS's video builders and lets `tfds.features.Video` be built without
  TensorFlow (see the module docstring); does nothing more after the first call."""
  with contextlib.suppress(ImportError):  # a TFDS without its video datasets: names not found
    importlib.import_module("tensorflow_datasets.video")
  if importlib.util.find_spec("tensorflow") is None:
    # pylint: disable-next=g-import-not-at-top
    from tensorflow_datasets.core.features import video_feature
    if not isinstance(video_feature.tf, _TensorFlowForVideo):
      video_feature.tf = _TensorFlowForVideo(video_feature.tf)
