"""One training per workdir: DIR/train.lock refuses a second one and is released at the end."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import trainer_subprocess as ts
from conftest import tiny_config
from jax_ssl import run_lock, train
from jax_ssl.errors import NonFiniteError

HOST = socket.gethostname()


def _write_lock(workdir, **content):
  holder = {"pid": os.getpid(), "host": HOST, "process_start": run_lock._process_start(os.getpid()),  # pylint: disable=protected-access
            "started": "2025-01-02T03:04:05+00:00", "command": "python -m jax_ssl.train", **content}
  (workdir / "train.lock").write_text(json.dumps(holder))
  return holder


def _dead_pid():
  process = subprocess.Popen(["true"])
  process.wait()
  return process.pid


def test_a_live_training_on_this_host_is_refused_with_one_line_naming_it(tmp_path):
  _write_lock(tmp_path)  # this process: alive
  with pytest.raises(run_lock.WorkdirInUseError) as info:
    run_lock.RunLock(str(tmp_path)).acquire()
  assert str(info.value) == (
      f"{tmp_path} is in use by another training (pid {os.getpid()} on this host ({HOST}), started "
      f"2025-01-02T03:04:05+00:00); wait for it to end, stop it (kill -INT {os.getpid()} saves and "
      f"stops it), or use another --workdir")


def test_a_lock_from_another_host_is_refused_naming_the_file_to_delete(tmp_path):
  _write_lock(tmp_path, host="gpu-node-7", pid=4242)
  with pytest.raises(run_lock.WorkdirInUseError) as info:
    run_lock.RunLock(str(tmp_path)).acquire()
  assert str(info.value) == (
      f"{tmp_path} is in use by another training (pid 4242 on host gpu-node-7, started "
      f"2025-01-02T03:04:05+00:00); wait for it to end or use another --workdir; if you are sure it "
      f"no longer runs (another host's process cannot be checked from here), delete "
      f"{tmp_path}/train.lock and rerun")


@pytest.mark.parametrize("why", ["dead pid", "reused pid"])
def test_a_stale_lock_is_taken_over_with_a_warning_and_released(tmp_path, capsys, why):
  if why == "dead pid":
    pid = _dead_pid()
    _write_lock(tmp_path, pid=pid, process_start=None)
  else:  # our pid, but the lock's process started at another time: the pid was reused
    pid = os.getpid()
    _write_lock(tmp_path, process_start="1")
  lock = run_lock.RunLock(str(tmp_path))
  lock.acquire()
  assert capsys.readouterr().out == (
      f"warning: took over the stale lock {tmp_path}/train.lock (pid {pid} on this host ({HOST}), "
      f"started 2025-01-02T03:04:05+00:00; that process is gone)\n")
  holder = json.loads((tmp_path / "train.lock").read_text())
  assert holder["pid"] == os.getpid() and holder["host"] == HOST
  lock.release()
  assert os.listdir(tmp_path) == []


def test_training_refuses_a_locked_workdir_before_writing_anything(fake_fmnist, tmp_path):
  _write_lock(tmp_path)
  with pytest.raises(run_lock.WorkdirInUseError, match=r"is in use by another training \(pid "):
    train.train_and_evaluate(tiny_config(*fake_fmnist), str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["train.lock"]  # no config.json, metrics or checkpoints


def test_the_lock_is_held_while_training_and_released_on_errors(fake_fmnist, tmp_path, monkeypatch):
  seen = []
  original = train.MetricWriter.write

  def write(self, step, values):
    seen.append(json.loads((tmp_path / "train.lock").read_text())["pid"])
    if step == 2:
      raise NonFiniteError("stop here")
    return original(self, step, values)

  monkeypatch.setattr(train.MetricWriter, "write", write)
  with pytest.raises(NonFiniteError):
    train.train_and_evaluate(tiny_config(*fake_fmnist, total_steps=4), str(tmp_path))
  assert seen == [os.getpid()] * 2
  assert not (tmp_path / "train.lock").exists()


def test_a_second_cli_run_on_the_same_workdir_refuses_and_ctrl_c_releases_the_first(
    fake_fmnist, tmp_path):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=100000, checkpoint_every_steps=1000,
                         log_every_steps=20)
  first = ts.run(args, wait=False)
  lock = tmp_path / "train.lock"
  deadline = time.time() + 300
  while not (tmp_path / "metrics.jsonl").exists() or not lock.exists():  # it is training
    assert first.poll() is None and time.time() < deadline, first.stdout.read()[-3000:]
    time.sleep(0.5)
  second = ts.run(args, check=False)
  assert second.returncode == 1
  assert "Traceback" not in second.stderr, second.stderr[-3000:]
  assert re.fullmatch(
      rf"error: {re.escape(str(tmp_path))} is in use by another training \(pid {first.pid} on this "
      rf"host \({re.escape(HOST)}\), started \S+\); wait for it to end, stop it \(kill -INT "
      rf"{first.pid} saves and stops it\), or use another --workdir",
      second.stderr.strip().splitlines()[-1]), second.stderr[-3000:]
  first.send_signal(signal.SIGINT)
  output, _ = first.communicate(timeout=300)
  assert first.returncode == 130, output[-3000:]
  assert re.search(r"^stopped by SIGINT at step (\d+) of 100000 and saved it in ", output, re.MULTILINE)
  assert not lock.exists()
