"""Video configs: the clip section typed once, methods' clip needs checked at the entry point,
and a backbone of the wrong kind for the data refused in one line."""

import pytest
from flax import nnx

from jax_ssl import config as config_lib
from jax_ssl.config import checks, schema
from jax_ssl.errors import ConfigError


def _experiment(method="cvrl", **sections):
  return schema.Experiment.from_config({"method": method, **sections})


def test_clip_sampling_takes_one_clip_per_view_of_the_method():
  sampling = config_lib.clip_sampling(_experiment(
      "rspnet", clips={"num_frames": 4, "stride": 2, "speeds": [1, 2],
                       "speed_pattern": "rspnet"}))
  assert (sampling.num_clips, sampling.num_frames, sampling.stride) == (3, 4, 2)
  assert sampling.speeds == (1, 2) and sampling.speed_pattern == "rspnet"
  assert config_lib.clip_sampling(_experiment("byol", method_args={"num_clips": 4})).num_clips == 4


def test_rspnet_needs_the_rspnet_speed_pattern():
  with pytest.raises(ConfigError, match=r"clips.speed_pattern='rspnet' and two or more "):
    checks.validate(_experiment("rspnet", model={"backbone": "video_cnn_small"}), 1)
  checks.validate(_experiment("rspnet", model={"backbone": "video_cnn_small"},
                              clips={"speeds": [1, 2], "speed_pattern": "rspnet"}), 1)


def test_playback_speed_classes_must_be_the_clip_speeds():
  with pytest.raises(ConfigError, match=r"method_args.speeds=\(1, 2\) differs from "
                                        r"config.clips.speeds=\(1, 4\)"):
    checks.validate(_experiment("temporal_pretext", model={"backbone": "video_cnn_small"},
                                method_args={"task": "speed", "speeds": [1, 2]},
                                clips={"speeds": [1, 4]}), 1)


def test_sort_chunks_must_split_the_clip():
  with pytest.raises(ConfigError, match=r"method_args.chunks=4 with config.clips.num_frames=6"):
    checks.validate(_experiment("temporal_pretext", model={"backbone": "video_cnn_small"},
                                method_args={"task": "sort", "chunks": 4},
                                clips={"num_frames": 6}), 1)
  checks.validate(_experiment("temporal_pretext", model={"backbone": "video_cnn_small"},
                              method_args={"task": "sort", "chunks": 3},
                              clips={"num_frames": 6}), 1)


def test_a_backbone_of_the_wrong_kind_for_the_data_is_one_line():
  video = _experiment(model={"backbone": "video_cnn_small", "width": 2})
  with pytest.raises(ConfigError, match=r"is a video backbone and dataset 'imagenet2012' has "
                                        r"images; use an image backbone"):
    config_lib.build_backbone(video, 3, nnx.Rngs(0))
  image = _experiment(model={"backbone": "resnet18"})
  with pytest.raises(ConfigError, match=r"'resnet18' takes images and dataset 'imagenet2012' "
                                        r"has videos; use a video backbone"):
    config_lib.build_backbone(image, 3, nnx.Rngs(0), num_frames=4)
  vit = _experiment(model={"backbone": "vit_tiny", "dim": 16, "depth": 1, "num_heads": 2,
                           "patch_size": 8, "tubelet_size": 2}, augment={"output_size": 16})
  module = nnx.eval_shape(lambda: config_lib.build_backbone(vit, 1, nnx.Rngs(0), num_frames=4))
  assert module.token_grid == (2, 2, 2) and module.patch_pixels == 2 * 8 * 8
