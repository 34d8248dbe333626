"""Video runs through the real trainer: exact resume and 1-vs-8-device equality with the
host's clip sampling (speeds, queue and EMA of RSPNet included), the UCF101 experiment file
on mocked `ucf101`, and a video folder made here going through prepare_data and training."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import trainer_subprocess as ts

STEPS = 4
# RSPNet: 3 clips a video at two speeds (the host's "rspnet" pattern), the MoCo queue and the
# EMA key encoder in the train state; tiny clips so that 3 trainer processes stay cheap.
RSPNET = dict(total_steps=STEPS, checkpoint_every_steps=2, global_batch_size=16,
              **{"model.width": 4, "clips.num_frames": 2, "augment.output_size": 16,
                 "method_args.queue_size": 32, "evaluate": False,
                 "diagnostics_every_steps": 0, "log_every_steps": 1})


def _args(workdir, data):
  source_dir, data_dir = data
  return ["--config", os.path.join(ts.ROOT, "experiments/moving_fashion_mnist/rspnet.py:runlocal"),
          "--workdir", str(workdir), f"--config.dataset.source_dir={source_dir}",
          f"--config.dataset.data_dir={data_dir}"] + [f"--config.{k}={v}" for k, v in RSPNET.items()]


def test_a_video_run_resumes_exactly_and_is_the_same_on_1_and_8_devices(fake_moving_fmnist,
                                                                      tmp_path):
  reference = tmp_path / "reference"
  ts.run(_args(reference, fake_moving_fmnist))
  expected = ts.losses(reference)
  assert sorted(expected) == list(range(1, STEPS + 1))
  records = [json.loads(l) for l in open(reference / "metrics.jsonl")]
  # The host's rspnet pattern gave every video a same-speed pair and an other-speed clip.
  assert all(r["speed_triplets"] == 1.0 for r in records)

  killed_dir = tmp_path / "killed"
  killed = ts.run(_args(killed_dir, fake_moving_fmnist),
                  harness_flags=["--kill_at_step=3", "--kill_signal=KILL"], check=False)
  assert killed.returncode == -signal.SIGKILL
  rerun = ts.run(_args(killed_dir, fake_moving_fmnist))
  assert f"resumed from step 2 of {STEPS}" in rerun.stdout
  got = ts.losses(killed_dir)
  for step in expected:  # the same clips, speeds, views and queue after the resume
    assert got[step] == pytest.approx(expected[step], rel=1e-6), step
  for field in ("params", "method_state"):
    _, a = ts.final_params(killed_dir, field)
    _, b = ts.final_params(reference, field)
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=f"{field}{key}")

  one_device = tmp_path / "one_device"
  ts.run(_args(one_device, fake_moving_fmnist), devices=1)
  single = ts.losses(one_device)
  for step in expected:
    assert single[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-4), step


def test_the_ucf101_file_trains_and_evaluates_on_mocked_ucf101(tmp_path):
  from experiments.ucf101 import cvrl_r3d18  # pylint: disable=g-import-not-at-top
  from jax_ssl import train  # pylint: disable=g-import-not-at-top
  config = cvrl_r3d18.get_config("runlocal")
  config.model.width = 4
  config.eval.update(knn_k=3)
  with tfds.testing.mock_data(num_examples=16):
    out = train.train_and_evaluate(config, str(tmp_path))
  assert out["step"] == config.total_steps
  losses = [json.loads(l)["loss"] for l in open(tmp_path / "metrics.jsonl")]
  assert len(losses) == config.total_steps and all(np.isfinite(losses))
  results = json.load(open(tmp_path / "results.json"))
  assert results["dataset"] == "ucf101" and results["method"] == "cvrl"
  for key in ("knn_top1", "linear_top1", "retrieval_recall@1", "retrieval_recall@5"):
    assert 0.0 <= results[key] <= 1.0, key
  assert results["retrieval_recall@1"] <= results["retrieval_recall@5"]


def _write_video(path, colour, seconds=10, fps=5, size=32):
  import av  # pylint: disable=g-import-not-at-top
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    for index in range(seconds * fps):
      frame = np.zeros((size, size, 3), np.uint8)
      frame[..., :] = colour
      frame[index % size, :, :] = 255  # a moving line
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def test_a_folder_of_videos_goes_through_prepare_data_and_training(tmp_path):
  from jax_ssl import train  # pylint: disable=g-import-not-at-top
  from experiments.kinetics400 import cvrl_r3d50  # pylint: disable=g-import-not-at-top
  source = tmp_path / "videos"
  for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
    os.makedirs(source / name)
    for index in range(3):
      _write_video(source / name / f"{index}.mp4", colour)
  data_dir = str(tmp_path / "tfds")
  prepared = subprocess.run(  # as a user runs it
      [sys.executable, "-m", "jax_ssl.prepare_data", "video_folder", f"--source={source}",
       "--name=my_videos", f"--data_dir={data_dir}", "--image_size=32",
       "--test_fraction=0.34"], capture_output=True, text=True, timeout=300,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert prepared.returncode == 0, prepared.stdout + prepared.stderr
  config = cvrl_r3d50.get_config("runlocal")
  config.dataset.update(name="my_videos", data_dir=data_dir)
  config.model.width = 4
  config.evaluate = False
  out = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert out["step"] == config.total_steps
  losses = [json.loads(l)["loss"] for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert len(losses) == config.total_steps and all(np.isfinite(losses))
