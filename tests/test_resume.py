"""Exact resume: SIGKILL after a checkpoint, or SIGTERM, then the same command again."""

import os
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
  ts.run(args)
  _assert_same_run(tmp_path, uninterrupted)


def test_sigterm_saves_and_exits_zero_then_resumes_exactly(fake_fmnist, tmp_path, uninterrupted):
  args = ts.trainer_args(tmp_path, *fake_fmnist, total_steps=TOTAL_STEPS, checkpoint_every_steps=5)
  ts.run(args, harness_flags=["--kill_at_step=7", "--kill_signal=TERM"])  # exit code 0
  assert "7" in os.listdir(tmp_path / "checkpoints")
  assert max(ts.losses(tmp_path)) == 7
  ts.run(args)
  _assert_same_run(tmp_path, uninterrupted)
