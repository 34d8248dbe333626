"""The asynchronous train loop: the host reads device arrays only at log steps and saves,
non-finite steps are still caught before any save, and device prefetch keeps exact resume."""

import json
import os
import re
import threading

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from jax_ssl import checkpoint, perf, sharding, train
from jax_ssl.errors import NonFiniteError


def _count_host_reads(monkeypatch):
  """Steps (1 = after the first step's dispatch) in which the main thread read a device
  array back: every conversion (float, int, bool, item, tolist, np.asarray, repr, ...) goes
  through the array type's `_value`, and `jax.device_get` is counted as well. JAX's transfer
  guard cannot be used: it does not fire on the CPU backend. Also returns the steps whose
  checkpoint was saved."""
  perf.cpu_peak_flops_per_second()  # measured (a jitted matmul) once per process, before
  array_type = type(jnp.zeros(()))
  value = array_type.__dict__["_value"]
  calls, reads, saved = [0], set(), set()

  def record():
    if threading.current_thread() is threading.main_thread():
      reads.add(calls[0])

  def read_value(self):
    record()
    return value.fget(self)

  device_get = jax.device_get
  def counted_device_get(tree):
    record()
    return device_get(tree)

  call = jax.stages.Compiled.__call__
  def counted_call(self, *args, **kwargs):
    calls[0] += 1
    return call(self, *args, **kwargs)

  save = checkpoint.Checkpointer.save
  def recorded_save(self, step, *args, **kwargs):
    done = save(self, step, *args, **kwargs)
    if done:
      saved.add(step)
    return done

  monkeypatch.setattr(array_type, "_value", property(read_value))
  monkeypatch.setattr(jax, "device_get", counted_device_get)
  monkeypatch.setattr(jax.stages.Compiled, "__call__", counted_call)
  monkeypatch.setattr(checkpoint.Checkpointer, "save", recorded_save)
  return reads, saved


def test_the_host_reads_device_arrays_only_at_log_steps_and_checkpoints(
    fake_fmnist, tmp_path, monkeypatch):
  reads, saved = _count_host_reads(monkeypatch)
  out = train.train_and_evaluate(
      tiny_config(*fake_fmnist, total_steps=10, log_every_steps=4, checkpoint_every_steps=6),
      str(tmp_path))
  monkeypatch.undo()
  assert out["step"] == 10
  logged = {json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")}
  assert logged == {4, 8, 10}
  assert saved == {1, 6, 10}  # Orbax saves the first step of a fresh run
  quiet = set(range(1, 11)) - logged - saved
  assert quiet == {2, 3, 5, 7, 9}
  assert reads & quiet == set(), f"blocking reads at steps {sorted(reads & quiet)}"
  assert logged <= reads  # the logged metrics are read (the read counter works)


def _poison_step(monkeypatch, bad_step):
  """The trainer's step with a NaN loss at step `bad_step` only (NaN parameters going in,
  the clean ones kept coming out), the way a blow-up of one batch looks to the loop."""
  make = train.make_train_step

  def make_poisoned(*args, **kwargs):
    inner = make(*args, **kwargs)

    def step(state, batch, rng):
      poisoned = state.step == bad_step - 1  # the state's counter before the step
      nan_params = jax.tree.map(lambda p: jnp.where(poisoned, jnp.nan, p), state.params)
      new_state, metrics = inner(state.replace(params=nan_params), batch, rng)
      clean = jax.tree.map(lambda new, old: jnp.where(poisoned, old, new), new_state.params,
                           state.params)
      return new_state.replace(params=clean), metrics
    return step

  monkeypatch.setattr(train, "make_train_step", make_poisoned)


def test_a_nan_between_log_steps_stops_before_the_next_save_naming_its_step(
    fake_fmnist, tmp_path, monkeypatch):
  import trainer_subprocess as ts  # pylint: disable=g-import-not-at-top
  _poison_step(monkeypatch, bad_step=7)  # neither a log step (5, 10) nor a save (1, 4, 8, 12)
  config = tiny_config(*fake_fmnist, total_steps=12, log_every_steps=5, checkpoint_every_steps=4)
  with pytest.raises(NonFiniteError) as info:
    train.train_and_evaluate(config, str(tmp_path))
  assert re.fullmatch(
      rf"non-finite loss and grad_norm \(loss=nan, grad_norm=nan\) at step 7; stopped without "
      rf"saving it: the last checkpoint in {tmp_path}/checkpoints is intact\. Lower the learning "
      rf"rate, or set --config.skip_nonfinite_updates=True to skip such steps\.", str(info.value))
  saved = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert saved[-1] == 4  # step 8's save never started
  assert [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")] == [5]
  step, params = ts.final_params(tmp_path)
  assert step == 4 and all(np.all(np.isfinite(v)) for v in params.values())


def test_skipped_nonfinite_updates_are_counted_at_the_next_log_step(
    fake_fmnist, tmp_path, monkeypatch):
  _poison_step(monkeypatch, bad_step=7)
  warnings = []
  monkeypatch.setattr(train.logging, "warning",
                      lambda fmt, *args, **_: warnings.append(fmt % args if args else fmt))
  config = tiny_config(*fake_fmnist, total_steps=12, log_every_steps=5, checkpoint_every_steps=4,
                       skip_nonfinite_updates=True)
  out = train.train_and_evaluate(config, str(tmp_path))
  records = {r["step"]: r for r in map(json.loads, open(tmp_path / "metrics.jsonl"))}
  assert out["step"] == 12 and sorted(records) == [5, 10, 12]
  assert [records[s]["skipped_updates"] for s in (5, 10, 12)] == [0, 1, 1]
  assert "step 7: non-finite ['loss', 'grad_norm']; update skipped (1 so far)" in warnings


def _host_batches(count=40):
  """A grain iterator of [8] int batches 0..7, 8..15, ... (one per device)."""
  dataset = grain.MapDataset.range(8 * count).batch(8, drop_remainder=True)
  return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))


def test_device_prefetch_keeps_batches_in_flight_and_checkpoints_the_consumed_position():
  mesh = sharding.make_mesh()
  host = _host_batches()
  batches = sharding.DevicePrefetch(host, mesh, size=2)
  first = next(batches)
  assert isinstance(first, jax.Array) and first.sharding == sharding.batch_sharding(mesh)
  np.testing.assert_array_equal(first, np.arange(8))
  assert host.get_state()["next_index"] == 3  # the batch returned + 2 on their way
  for _ in range(2):
    next(batches)
  state = batches.get_state()  # after 3 batches consumed (5 fetched)
  assert json.loads(state) == {"next_index": 3}
  # A fresh iterator restored from it continues with the 4th batch, as after a resume.
  resumed = sharding.DevicePrefetch(_host_batches(), mesh)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed), np.arange(24, 32))
  np.testing.assert_array_equal(next(batches), np.arange(24, 32))
  # A finite iterator's last batches are not lost in the queue.
  finite = sharding.DevicePrefetch(_host_batches(count=3), mesh)
  np.testing.assert_array_equal(np.concatenate(list(finite)), np.arange(24))


def test_a_checkpoint_holds_the_position_of_the_consumed_batches(tmp_path):
  """Through the checkpointer the trainer uses (grain's Orbax handler): the file is the same
  as the host iterator's own at that position."""
  mesh = sharding.make_mesh()
  batches = sharding.DevicePrefetch(_host_batches(), mesh)
  for _ in range(3):
    next(batches)
  checkpointer = checkpoint.Checkpointer(str(tmp_path / "checkpoints"), keep=2, save_every_steps=1)
  state = {"w": jnp.ones(3)}
  assert checkpointer.save(3, state, batches, force=True)
  checkpointer.wait()
  restored_host = _host_batches()
  checkpointer.restore(3, checkpoint.abstract_like(state, sharding.replicated(mesh)),
                       restored_host)
  checkpointer.close()
  assert restored_host.get_state() == {"next_index": 3}
  np.testing.assert_array_equal(next(restored_host), np.arange(24, 32))
