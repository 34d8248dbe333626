"""Your own videos: `python -m jax_ssl.prepare_data video_folder`, then `load_source` by name."""

import os

import av
import numpy as np
import pytest
from absl import flags

from jax_ssl import prepare_data
from jax_ssl.data import image_folder, pipeline, video_folder
from jax_ssl.errors import ConfigError, DataError

# Class -> the colour of the middle of its frames (the sides, green, are cropped away).
COLORS = {"blue": (40, 60, 220), "red": (220, 40, 40)}
SIDE = (0, 255, 0)


def write_video(path, color, *, num_frames=8, fps=8, width=48, height=32):
  """A 1-second mpeg4 video: a `color` middle between two 8-pixel green bands."""
  frame = np.zeros((height, width, 3), np.uint8)
  frame[:] = SIDE
  frame[:, 8:width - 8] = color
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for _ in range(num_frames):
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def make_videos(root, per_class=3):
  for name, color in COLORS.items():
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(per_class):
      write_video(os.path.join(root, name, f"{name}_{i}.mp4"), color)
  with open(os.path.join(root, "red", "broken.mp4"), "wb") as f:
    f.write(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 20)  # an mp4 header, then nothing
  return root


def run_cli(*args):
  """`python -m jax_ssl.prepare_data video_folder ARGS`, in this process."""
  argv = ["prepare_data", *args, "--verbosity=-1"]  # -1: absl's default; main keeps it
  flags.FLAGS(argv)
  try:
    prepare_data.main(["prepare_data", "video_folder"])
  finally:
    flags.FLAGS.unparse_flags()


def test_video_folder_builds_and_loads_by_name(tmp_path, capsys):
  source = make_videos(str(tmp_path / "videos"))
  data_dir = str(tmp_path / "tfds")
  run_cli("--source", source, "--name", "my_clips", "--data_dir", data_dir, "--image_size", "16",
          "--test_fraction", "0.25")
  lines = capsys.readouterr().out.splitlines()
  assert any(line.startswith("skipped red/broken.mp4: InvalidDataError: ") for line in lines), lines
  assert "1 files skipped (listed above)" in lines
  # round(0.25 x 4) = 1 red file and round(0.25 x 3) = 1 blue file held out (a fixed choice).
  held_out = [path for path, _ in image_folder.scan(source, test_fraction=0.25).files["test"]]
  num_test = len(held_out) - ("red/broken.mp4" in held_out)
  assert (f"built 'my_clips' in {data_dir}/my_clips/1.0.0: train {6 - num_test}, test {num_test} "
          f"videos of 16x16x3 frames, 2 classes (blue, red)") in lines
  info = pipeline.dataset_info("my_clips", data_dir=data_dir)
  assert pipeline.is_video(info) and pipeline.video_shape(info) == (None, 16, 16, 3)
  seen = []
  for split in ("train", "test"):
    clips = pipeline.load_source("my_clips", split, data_dir=data_dir)
    for index in range(len(clips)):
      record = clips[index]
      video, name = record["video"], info.features["label"].names[record["label"]]
      assert video.shape == (8, 16, 16, 3) and video.dtype == np.uint8
      # 48x32 -> shorter side 16 (24x16) -> the middle 16 columns: the class colour only
      # (within the codec's and the resampling's error; the green sides would be 215 off).
      middle = video[:, 3:13, 3:13].reshape(-1, 3).astype(int)
      assert np.abs(middle - COLORS[name]).max() <= 16, (name, middle.mean(axis=0))
      assert np.abs(video.reshape(-1, 3).mean(axis=0) - COLORS[name]).max() <= 20
      seen.append(name)
  assert sorted(seen) == ["blue"] * 3 + ["red"] * 3


def test_frames_per_second_and_count_limits(tmp_path):
  path = tmp_path / "clip.mp4"
  write_video(path, COLORS["red"], num_frames=8, fps=8)
  assert video_folder.load_video(str(path), image_size=8).shape == (8, 8, 8, 3)
  assert video_folder.load_video(str(path), image_size=8, fps=4).shape[0] == 4  # every 2nd
  assert video_folder.load_video(str(path), image_size=8, num_frames=3).shape[0] == 3
  gray = video_folder.load_video(str(path), image_size=8, channels=1, fps=2.5)
  assert gray.shape == (3, 8, 8, 1)  # at 0 s, 0.5 (the first at or after 0.4), 0.875 (0.8)


def test_bad_folders_and_options_are_one_line(tmp_path):
  (tmp_path / "junk" / "cats").mkdir(parents=True)
  (tmp_path / "junk" / "cats" / "a.mp4").write_bytes(b"not a video")
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(DataError, match=r"no readable video for split 'train' in .*junk \(1 files"):
    video_folder.build(str(tmp_path / "junk"), name="junk", data_dir=data_dir)
  assert not os.path.exists(tmp_path / "tfds" / "junk")
  with pytest.raises(ConfigError, match=r"--resize 'encoded': video_folder resizes every frame"):
    video_folder.build(str(tmp_path / "junk"), name="junk", data_dir=data_dir, resize="encoded")
  (tmp_path / "empty" / "cats").mkdir(parents=True)
  with pytest.raises(DataError, match=r"no video files in .*empty: put videos in it"):
    video_folder.build(str(tmp_path / "empty"), name="empty", data_dir=data_dir)
