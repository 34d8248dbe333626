"""Results do not depend on the device or process count, and a preemption of one process
stops all of them after the same step and resumes exactly.

One test for both (each multi-process run costs tens of CPU-seconds): an uninterrupted
1-device run and an uninterrupted 1-process 8-device run, and 2 trainer processes x 4 CPU
devices started from fake SLURM variables alone (no multi-host flags; distributed.py: this
is also the real test of that start; tests/test_fsdp.py starts 2 processes with the flags),
each printing its start banner, process 1 alone getting a SIGTERM after process 0 logged its
first step. Both must exit 0 with one new checkpoint (the same step for both: one step folder
holding both processes' grain iterator files); the rerun of both resumes from it. The logged
losses of all steps of the three runs must be equal (relative difference <= 1e-4): per-device
NT-Xent negatives, per-device BatchNorm statistics, a data order that depends on the process
count, or a resume at another input position or from another state each miss by 1e-2 or
more (from the first step, for the first three).

The learning rate is 10x below the recipe's: Adam turns the gradients of BatchNorm biases
that feed another BatchNorm (zero up to rounding) into +-lr steps whose sign follows the
rounding of the cross-device sum, so float noise grows with the step size. With the recipe's
rate, 2 processes x 4 devices drift to ~2e-4 relative by step 15 (measured); 1e-4 holds for
the first 20 steps at this rate.
"""

import os
import re
import signal
import socket
import threading

import pytest

import trainer_subprocess as ts
from jax_ssl import interrupts

STEPS = 20
OVERRIDES = {"total_steps": STEPS, "checkpoint_every_steps": 100,
             "optimizer.base_learning_rate": 2e-4}


def _free_slurm_job_id() -> int:
  """A job id whose SLURM port (61440 + id % 4096, JAX's rule) is free here."""
  for job_id in range(os.getpid() % 4096, os.getpid() % 4096 + 4096):
    with socket.socket() as s:
      try:
        s.bind(("", 61440 + job_id % 4096))
        return job_id
      except OSError:
        continue
  raise RuntimeError("no free port in 61440-65535")


def _start_two(workdir, fake_fmnist, job_id):
  """2 trainer processes x 4 devices under a fake 2-task SLURM job step on this machine: the
  variables JAX's SlurmCluster reads, no multi-host flags."""
  return [ts.run(ts.trainer_args(workdir, *fake_fmnist, **OVERRIDES), devices=4, wait=False,
                 extra_env={"SLURM_JOB_ID": str(job_id), "SLURM_STEP_NODELIST": "localhost",
                            "SLURM_NTASKS": "2", "SLURM_PROCID": str(pid),
                            "SLURM_LOCALID": str(pid)})
          for pid in range(2)]


class _Output:
  """Collects a process's output lines in a thread; `wait_for(prefix)` returns once one starts
  with `prefix` (False if the process ended without it)."""

  def __init__(self, proc):
    self.lines, self._changed = [], threading.Condition()
    self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
    self._thread.start()

  def _read(self, proc):
    for line in proc.stdout:
      with self._changed:
        self.lines.append(line.rstrip("\n"))
        self._changed.notify_all()
    with self._changed:
      self.lines.append(None)  # end of output
      self._changed.notify_all()

  def wait_for(self, prefix: str, timeout: float = 600) -> bool:
    with self._changed:
      found = lambda: any(l is None or l.startswith(prefix) for l in self.lines)
      self._changed.wait_for(found, timeout)
      return any(l is not None and l.startswith(prefix) for l in self.lines)

  def text(self) -> str:
    self._thread.join(timeout=600)
    return "\n".join(l for l in self.lines if l is not None)


def test_sigterm_to_one_process_stops_all_after_one_step_and_resumes_exactly(fake_fmnist, tmp_path):
  reference = ts.run(ts.trainer_args(tmp_path / "eight", *fake_fmnist, **OVERRIDES), devices=8,
                     wait=False)
  one_device = ts.run(ts.trainer_args(tmp_path / "one", *fake_fmnist, **OVERRIDES), devices=1,
                      wait=False)
  workdir = tmp_path / "two"
  job_id = _free_slurm_job_id()
  procs = _start_two(workdir, fake_fmnist, job_id)
  outputs = [_Output(proc) for proc in procs]
  assert outputs[0].wait_for("step 1/"), outputs[0].text()[-5000:]  # process 0 logs the steps
  procs[1].send_signal(signal.SIGTERM)
  for proc, output in zip(procs, outputs):
    proc.wait(timeout=600)
    assert proc.returncode == 0, output.text()[-5000:]
  for pid, output in enumerate(outputs):  # each process's start banner
    banner = (rf"process {pid} of 2 \(host [^,]+, pid \d+\): 4 local cpu devices \[[\d,-]+\] of "
              rf"8 in all; coordinator localhost:{61440 + job_id % 4096} \(from SLURM\)")
    assert re.search(banner, output.text()), output.text()[-3000:]

  # Orbax saved step 1 (its InitialSavePolicy: the first step of a fresh run); the stop
  # added one step after the signal.
  checkpoints = workdir / "checkpoints"
  steps = sorted(int(name) for name in os.listdir(checkpoints) if name.isdigit())
  stopped = steps[-1]
  # The notice spreads within ~1 s (interrupts.py): a few steps here, where 2 processes on 2
  # cores take 0.1-0.5 s per step. A machine that runs the remaining steps in that second
  # would end the run before the sync point: then STEPS must grow.
  assert steps == [1, stopped] and 1 < stopped < STEPS, (steps, outputs[0].text()[-3000:])
  assert sorted(f for f in os.listdir(checkpoints / str(stopped) / "data")
                if f.startswith("process_")) == ["process_0-of-2.json", "process_1-of-2.json"]
  assert (f"stopped by a preemption notice at step {stopped} of {STEPS} and saved it in "
          f"{checkpoints}/{stopped}; rerun the same command to resume from step {stopped}"
          ) in outputs[0].text().splitlines()
  assert max(ts.losses(workdir)) == stopped

  procs = _start_two(workdir, fake_fmnist, _free_slurm_job_id())
  reruns = [proc.communicate(timeout=600)[0] for proc in (*procs, reference, one_device)]
  for proc, output in zip((*procs, reference, one_device), reruns):
    assert proc.returncode == 0, output[-5000:]
  assert f"resumed from step {stopped} of {STEPS} ({checkpoints}/{stopped})" in reruns[0]
  reference_losses = ts.losses(tmp_path / "one")
  assert sorted(reference_losses) == list(range(1, STEPS + 1))
  for name, run_dir in (("8 devices", tmp_path / "eight"), ("2 x 4, preempted", workdir)):
    losses = ts.losses(run_dir)  # process 1 wrote nothing: each step logged once
    assert sorted(losses) == sorted(reference_losses), name
    for step, loss in reference_losses.items():
      assert losses[step] == pytest.approx(loss, rel=1e-4), (name, step)


def test_with_a_sync_point_sigterm_is_left_to_jax_and_sigint_becomes_its_notice(monkeypatch):
  """In-process: the handler logic of a multi-process run, with a fake sync point (JAX's
  agrees on step 7 here)."""
  reported = []
  def sync_point(step):
    reported.append(step)
    return step == 7
  raised = []
  monkeypatch.setattr(signal, "raise_signal", raised.append)
  before = signal.getsignal(signal.SIGTERM)
  stops = interrupts.StopSignals(lambda: ("aborted", lambda: None), sync_point=sync_point)
  with stops:
    assert signal.getsignal(signal.SIGTERM) is before  # JAX's own handler stays
    stops.starting_from(5)
    assert not stops.should_stop(5) and not stops.should_stop(6)
    stops._handle(signal.SIGINT, None)  # the first Ctrl-C: JAX's notice, no local stop
    assert raised == [signal.SIGTERM] and stops.received is None and not stops.should_stop(6)
    assert stops.should_stop(7) and stops.received == "SIGINT"  # the agreed step
    assert stops.should_stop(7)
  assert reported == [5, 5, 6, 6, 7]
  assert interrupts.EXIT_CODES[interrupts.PREEMPTION_NOTICE] == 0
  other = interrupts.StopSignals(lambda: ("aborted", lambda: None), sync_point=lambda s: s == 3)
  with other:
    assert not other.should_stop(2) and other.should_stop(3)
  assert other.received == interrupts.PREEMPTION_NOTICE  # the signal reached another process
