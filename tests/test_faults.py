"""Bad disks and bad data: each is one line naming the path and the fix, and nothing is lost.

The disk-full checkpoint saves, which need the uninterrupted run to compare the resumed one
against, are in test_resume.py.
"""

import errno
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

import trainer_subprocess as ts
from conftest import tiny_config
from jax_ssl import checkpoint, train
from jax_ssl.data import pipeline
from jax_ssl.errors import DataError, StorageError

# What TensorStore (Orbax's array writer) raised when a real tmpfs filled up during a write.
_TENSORSTORE_ENOSPC = (
    'RESOURCE_EXHAUSTED: Error writing local file "/mnt/small/x/0.0": Failed writing: '
    '"/mnt/small/x/0.0.__lock": Failed to write 2493290 bytes to file 4: No space left on device '
    "[os_error_code='28']")


def test_full_or_unwritable_disks_are_recognised_in_any_wrapping(tmp_path):
  assert checkpoint.storage_error(ValueError(_TENSORSTORE_ENOSPC)) == (errno.ENOSPC, "/mnt/small/x/0.0")
  denied = PermissionError(errno.EACCES, "Permission denied", "/w/checkpoints/5/state")
  try:
    try:
      raise denied
    except OSError as e:
      raise RuntimeError("Failed to run 3 Handler Commit operations") from e
  except RuntimeError as wrapped:
    assert checkpoint.storage_error(wrapped) == (errno.EACCES, "/w/checkpoints/5/state")
  assert checkpoint.storage_error(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
  assert checkpoint.storage_error(ValueError("RESOURCE_EXHAUSTED: out of memory")) is None
  # An error raised `from None` (a DataError) does not inherit its context's errno.
  try:
    try:
      raise denied
    except OSError:
      raise DataError("dataset is unreadable") from None
  except DataError as e:
    assert checkpoint.storage_error(e) is None
  os.makedirs(tmp_path / "checkpoints" / "7")  # finalized step folders only
  os.makedirs(tmp_path / "checkpoints" / "9.orbax-checkpoint-tmp")
  message = checkpoint.write_failure_message(
      ValueError(_TENSORSTORE_ENOSPC), checkpoint_dir=str(tmp_path / "checkpoints"), what="X")
  assert message == (
      f"cannot write X: No space left on device (/mnt/small/x/0.0); free space on that disk (or copy "
      f"{tmp_path} to a disk that has room and is writable, and pass the copy as --workdir), then "
      f"rerun the same command: it resumes from step 7, the last complete checkpoint")


def test_disk_full_writing_metrics_is_one_error_after_the_last_checkpoint_is_complete(
    fake_fmnist, tmp_path, monkeypatch):
  metrics = str(tmp_path / "metrics.jsonl")
  original = train.MetricWriter.write

  def write(self, step, values):
    if step == 5:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), metrics)
    return original(self, step, values)

  monkeypatch.setattr(train.MetricWriter, "write", write)
  with pytest.raises(StorageError) as info:
    train.train_and_evaluate(tiny_config(*fake_fmnist, total_steps=6, checkpoint_every_steps=3),
                             str(tmp_path))
  assert str(info.value) == (
      f"cannot write {metrics}: No space left on device; free space on that disk (or copy {tmp_path} "
      f"to a disk that has room and is writable, and pass the copy as --workdir), then rerun the "
      f"same command: it resumes from step 3, the last complete checkpoint")
  step, params = ts.final_params(tmp_path)  # the checkpoint named in the message loads
  assert step == 3 and params


def test_disk_full_finishing_the_final_save_is_one_error_and_keeps_the_previous_checkpoint(
    fake_fmnist, tmp_path, monkeypatch):
  # The last save (step 6) fails in Orbax's background thread: the trainer's closing
  # wait_until_finished reports it.
  from orbax.checkpoint._src.checkpointers import async_checkpointer  # pylint: disable=g-import-not-at-top
  original = async_checkpointer._on_commit_callback  # pylint: disable=protected-access

  def on_commit(tmpdir, *args, **kwargs):
    if os.path.basename(str(tmpdir.get_final())) == "6":
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmpdir.get()))
    return original(tmpdir, *args, **kwargs)

  monkeypatch.setattr(async_checkpointer, "_on_commit_callback", on_commit)
  with pytest.raises(StorageError) as info:
    train.train_and_evaluate(tiny_config(*fake_fmnist, total_steps=6, checkpoint_every_steps=3),
                             str(tmp_path))
  checkpoints = tmp_path / "checkpoints"
  assert re.fullmatch(
      rf"cannot write the checkpoint of step 6 in {checkpoints}: No space left on device "
      rf"\({checkpoints}/6\.orbax-checkpoint-tmp\S*\); free space on that disk .* then rerun the "
      rf"same command: it resumes from step 3, the last complete checkpoint", str(info.value))
  step, params = ts.final_params(tmp_path)
  assert step == 3 and params


def test_read_only_workdir_is_one_clear_error(fake_fmnist, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  workdir.chmod(0o555)
  drop_root_override = []  # root writes into read-only folders unless it drops CAP_DAC_OVERRIDE
  if os.geteuid() == 0:
    if not shutil.which("setpriv"):
      pytest.skip("running as root without setpriv")
    drop_root_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                          "--inh-caps=-dac_override,-dac_read_search"]
  proc = subprocess.run(
      drop_root_override + [
          sys.executable, "-m", "jax_ssl.train", "--config",
          os.path.join(ts.ROOT, "experiments/fashion_mnist/simclr.py:runlocal"), "--workdir",
          str(workdir), f"--config.dataset.source_dir={fake_fmnist[0]}",
          f"--config.dataset.data_dir={fake_fmnist[1]}"],
      env={**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  workdir.chmod(0o755)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: --workdir {workdir} is not writable (Permission denied); choose a writable directory "
      f"(nothing was changed)")
  assert os.listdir(workdir) == []


def _copy_of(data_dir, tmp_path):
  copy = str(tmp_path / "tfds")
  shutil.copytree(data_dir, copy)
  (train_file,) = glob.glob(f"{copy}/fashion_mnist_local/1.0.0/*-train.array_record-*")
  return copy, train_file


def test_a_record_that_fails_to_decode_names_its_index_file_and_the_rebuild(fake_fmnist, tmp_path):
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  data_dir, train_file = _copy_of(fake_fmnist[1], tmp_path)
  reader = array_record_module.ArrayRecordReader(train_file)
  records = reader.read_all()
  reader.close()
  writer = array_record_module.ArrayRecordWriter(train_file, "group_size:1")
  for index, record in enumerate(records):
    writer.write(b"not a tf.train.Example" if index == 300 else record)
  writer.close()
  source = pipeline.load_source("fashion_mnist", "train", data_dir=data_dir)
  assert source[299]["image"].shape == source[301]["image"].shape == (28, 28, 1)
  with pytest.raises(DataError) as info:
    source[300]
  assert str(info.value).startswith(
      f"dataset 'fashion_mnist' split 'train': record 300 (record 300 of {train_file}) is unreadable "
      f"(DecodeError: Error parsing message")
  assert str(info.value).endswith(
      f"the dataset files are damaged: delete them (`rm -r {data_dir}/fashion_mnist_local/1.0.0`) "
      f"and rerun: they are rebuilt from --config.dataset.source_dir")
  assert "\n" not in str(info.value)


def test_truncated_dataset_file_stops_the_trainer_with_one_line_and_the_fix_works(fake_fmnist, tmp_path):
  source_dir = fake_fmnist[0]
  data_dir, train_file = _copy_of(fake_fmnist[1], tmp_path)
  with open(train_file, "r+b") as f:
    f.truncate(os.path.getsize(train_file) // 2)
  proc = subprocess.run(
      [sys.executable, "-m", "jax_ssl.train", "--config",
       os.path.join(ts.ROOT, "experiments/fashion_mnist/simclr.py:runlocal"), "--workdir",
       str(tmp_path / "run"), f"--config.dataset.source_dir={source_dir}",
       f"--config.dataset.data_dir={data_dir}", "--config.model.width=4"],
      env={**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  rebuild = f"rm -r {data_dir}/fashion_mnist_local/1.0.0"
  assert re.fullmatch(
      rf"error: dataset 'fashion_mnist' split 'train': record (\d+) \(record \1 of "
      rf"{re.escape(train_file)}\) is unreadable \(RuntimeError: .*Riegeli.*\); the dataset files are "
      rf"damaged: delete them \(`{re.escape(rebuild)}`\) and rerun: they are rebuilt from "
      rf"--config.dataset.source_dir", last), last
  # The fix in the message works: delete, and the trainer's prepare step rebuilds it.
  subprocess.run(rebuild.split(), check=True)
  pipeline.prepare("fashion_mnist", data_dir=data_dir, source_dir=source_dir)
  source = pipeline.load_source("fashion_mnist", "train", data_dir=data_dir)
  assert len(source) == 512 and all(source[i]["image"].shape == (28, 28, 1) for i in range(512))
