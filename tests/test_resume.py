"""Exact resume: SIGKILL after a checkpoint, SIGTERM, Ctrl-C, or a full disk, then the same command again."""

import os
import re
import signal

import numpy as np
import pytest

import trainer_subprocess as ts

TOTAL_STEPS = 14


@pytest.fixture(scope="module")
def uninterrupted(fake_fmnist, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  ts.run(ts.trainer_args(workdir, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5))
  return workdir


def _assert_same_run(workdir, reference):
  got, expected = ts.losses(workdir), ts.losses(reference)
  assert sorted(got) == list(range(1, TOTAL_STEPS + 1)) == sorted(expected)
  for step in expected:
    assert got[step] == pytest.approx(expected[step], rel=1e-6), f"step {step}"
  step_a, params_a = ts.final_params(workdir)
  step_b, params_b = ts.final_params(reference)
  assert step_a == step_b == TOTAL_STEPS and params_a.keys() == params_b.keys()
  for key in params_a:
    np.testing.assert_array_equal(params_a[key], params_b[key], err_msg=key)


def test_sigkill_after_checkpoint_then_rerun_is_exact(fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  killed = ts.run(args, harness_flags=["--kill_at_step=8", "--kill_signal=KILL"], check=False)
  assert killed.returncode == -signal.SIGKILL
  # Killed inside step 8: steps 6 and 7 were logged but not checkpointed; step 5 is complete.
  assert max(ts.losses(tmp_path)) == 7
  assert "5" in os.listdir(tmp_path / "checkpoints")
  rerun = ts.run(args)
  # The killed run's lock is stale (its pid is gone): taken over with a warning.
  assert re.search(rf"^warning: took over the stale lock {re.escape(str(tmp_path))}/train\.lock "
                   rf"\(pid \d+ on this host \(.*\), started .*; that process is gone\)$",
                   rerun.stdout, re.MULTILINE), rerun.stdout
  assert f"resumed from step 5 of {TOTAL_STEPS} ({tmp_path}/checkpoints/5)" in rerun.stdout.splitlines()
  _assert_same_run(tmp_path, uninterrupted)


def test_sigterm_saves_and_exits_zero_then_resumes_exactly(fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  ts.run(args, harness_flags=["--kill_at_step=7", "--kill_signal=TERM"])  # exit code 0
  assert "7" in os.listdir(tmp_path / "checkpoints")
  assert max(ts.losses(tmp_path)) == 7
  ts.run(args)
  _assert_same_run(tmp_path, uninterrupted)


def test_ctrl_c_saves_this_step_exits_130_and_the_rerun_resumes_exactly(
    fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  stopped = ts.run(args, harness_flags=["--kill_at_step=7", "--kill_signal=INT"], check=False)
  assert stopped.returncode == 130, stopped.stderr[-3000:]
  assert "Traceback" not in stopped.stderr and "KeyboardInterrupt" not in stopped.stderr
  assert ("SIGINT: stopping after this step and saving it; press Ctrl-C again to abort without "
          "saving") in stopped.stderr.splitlines()
  assert stopped.stdout.strip().splitlines()[-1] == (
      f"stopped by SIGINT at step 7 of {TOTAL_STEPS} and saved it in {tmp_path}/checkpoints/7; "
      f"rerun the same command to resume from step 7")
  assert "7" in os.listdir(tmp_path / "checkpoints") and max(ts.losses(tmp_path)) == 7
  assert not (tmp_path / "train.lock").exists()  # released on the way out
  rerun = ts.run(args)
  lines = rerun.stdout.strip().splitlines()
  assert f"resumed from step 7 of {TOTAL_STEPS} ({tmp_path}/checkpoints/7)" in lines
  assert lines[-1] == (f"done: checkpoint {tmp_path}/checkpoints/{TOTAL_STEPS} (evaluate=False; to "
                       f"evaluate it: python -m jax_ssl.evaluate --workdir {tmp_path})")
  _assert_same_run(tmp_path, uninterrupted)


def test_a_second_ctrl_c_while_saving_aborts_at_once_and_keeps_the_last_complete_checkpoint(
    fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  # The first Ctrl-C after step 7; the second while step 7's checkpoint is being written.
  aborted = ts.run(args, check=False, harness_flags=[
      "--kill_at_step=7", "--kill_signal=INT", "--sigint_during_save_of_step=7"])
  assert aborted.returncode == 130, aborted.stderr[-3000:]
  assert "Traceback" not in aborted.stderr, aborted.stderr[-3000:]
  assert aborted.stderr.strip().splitlines()[-1] == (
      f"aborted by a second SIGINT without finishing the save; rerun the same command to resume "
      f"from step 5 ({tmp_path}/checkpoints/5), the last complete checkpoint")
  finalized = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert finalized[-1] == 5  # step 7 never became a checkpoint
  assert not (tmp_path / "train.lock").exists()
  rerun = ts.run(args)
  assert f"resumed from step 5 of {TOTAL_STEPS} ({tmp_path}/checkpoints/5)" in rerun.stdout.splitlines()
  _assert_same_run(tmp_path, uninterrupted)


def test_sigkill_during_a_checkpoint_save_resumes_from_the_previous_one(fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  killed = ts.run(args, harness_flags=["--kill_during_save_of_step=10"], check=False)
  assert killed.returncode == -signal.SIGKILL
  leftovers = os.listdir(tmp_path / "checkpoints")
  assert "10" not in leftovers and any(name.startswith("10.") for name in leftovers), leftovers
  ts.run(args)
  _assert_same_run(tmp_path, uninterrupted)


def test_corrupt_latest_checkpoint_is_set_aside_and_an_older_one_used(fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  ts.run(args)
  latest = tmp_path / "checkpoints" / str(TOTAL_STEPS) / "state"
  garbled = 0
  for root, _, files in os.walk(latest):
    for name in files:
      path = os.path.join(root, name)
      if os.path.getsize(path) > 64:
        with open(path, "r+b") as f:  # truncate to half and garble what is left
          size = os.path.getsize(path)
          f.truncate(size // 2)
          f.seek(0)
          f.write(b"\xff" * min(64, size // 2))
        garbled += 1
  assert garbled
  rerun = ts.run(args)
  assert f"checkpoint {tmp_path / 'checkpoints' / str(TOTAL_STEPS)} is unreadable" in rerun.stdout
  aside = os.listdir(str(tmp_path / "checkpoints") + "_corrupt")
  assert len(aside) == 1 and aside[0].startswith(f"{TOTAL_STEPS}-")  # kept, not deleted
  _assert_same_run(tmp_path, uninterrupted)  # retrained from step 10 to the same result


def _disk_full_message(workdir, file_pattern):
  checkpoints = re.escape(str(workdir / "checkpoints"))
  return (rf"error: cannot write the checkpoint of step 10 in {checkpoints}: No space left on device "
          rf"\({checkpoints}/10\.orbax-checkpoint-tmp\S*/{file_pattern}\); free space on that disk "
          rf"\(or copy {re.escape(str(workdir))} to a disk that has room and is writable, and pass the "
          rf"copy as --workdir\), then rerun the same command: it resumes from step 5, the last "
          rf"complete checkpoint")


def _assert_failed_at_step_10_and_kept_step_5(proc, workdir, file_pattern):
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert re.fullmatch(_disk_full_message(workdir, file_pattern), proc.stderr.strip().splitlines()[-1])
  finalized = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
  assert finalized[-1] == 5  # step 10 never became a checkpoint; step 5 was not deleted
  step, params = ts.final_params(workdir)  # it loads
  assert step == 5 and params and all(np.all(np.isfinite(v)) for v in params.values())


def test_disk_full_in_the_background_save_is_one_line_and_the_rerun_resumes_exactly(
    fake_fmnist, tmp_path, uninterrupted):
  # Orbax writes the arrays in a background thread: TensorStore's ENOSPC surfaces at the next
  # save (the final one, step 14), and is reported for step 10.
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  failed = ts.run(args, check=False, harness_flags=["--disk_full_at_save_of_step=10",
                                                    "--disk_full_in=background"])
  _assert_failed_at_step_10_and_kept_step_5(failed, tmp_path, r"state/d/0a1b2c")
  assert max(ts.losses(tmp_path)) == TOTAL_STEPS  # it trained on; only the checkpoint failed
  ts.run(args)  # disk freed: the same command
  _assert_same_run(tmp_path, uninterrupted)


def test_disk_full_in_the_blocking_part_of_a_save_is_one_line_and_keeps_the_last_checkpoint(
    fake_fmnist, tmp_path):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  failed = ts.run(args, check=False, harness_flags=["--disk_full_at_save_of_step=10",
                                                    "--disk_full_in=blocking"])
  _assert_failed_at_step_10_and_kept_step_5(failed, tmp_path, r"process_0-of-1\.json")
  assert max(ts.losses(tmp_path)) == 9  # stopped at step 10's save
