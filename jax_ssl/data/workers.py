"""The iterators over the pipeline's batches (pipeline.train_iterator): threads of this
process, or grain worker processes (`WorkerStream`) whose checkpointed state does not depend
on their number."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import grain


def iterate(dataset: grain.MapDataset, read_threads: int, prefetch_buffer_size: int,
            num_workers: int, worker_buffer_size: int) -> grain.DatasetIterator:
  """An iterator over `dataset`'s batches: made by `num_workers` grain worker processes
  (`WorkerStream`), or by `read_threads` threads of this process reading
  `prefetch_buffer_size` batches ahead (num_workers=0)."""
  if num_workers > 0:
    return WorkerStream(
        dataset, grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=read_threads),
        grain.MultiprocessingOptions(num_workers=num_workers,
                                     per_worker_buffer_size=worker_buffer_size))
  options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size)
  return iter(dataset.to_iter_dataset(options))


def _exit_with_parent(worker_index: int, worker_count: int) -> None:
  """grain's worker initialiser: ends this worker process once the process that started it is
  gone. A SIGKILLed trainer (a preemption, `kill -9`) otherwise leaves its workers running,
  orphaned, holding its output pipes and memory (seen in tests: the killed trainer's
  subprocess never reached end of file)."""
  del worker_index, worker_count
  parent = os.getppid()

  def watch() -> None:
    while os.getppid() == parent:
      time.sleep(1.0)
    os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name="exit_with_parent", daemon=True).start()


class WorkerStream(grain.DatasetIterator):
  """The batches of `dataset` made by grain worker processes (`mp_prefetch`), with the state of
  the thread path, `{"next_index": batches returned}`: a checkpoint resumes with any number
  of workers, or none (grain's own mp_prefetch state records each worker's position, so a
  run could only resume with the worker count it was saved with, and `num_workers=-1`
  depends on the machine)."""

  def __init__(self, dataset: grain.MapDataset, read_options: grain.ReadOptions,
               multiprocessing_options: grain.MultiprocessingOptions):
    super().__init__()
    self._dataset, self._read_options = dataset, read_options
    self._multiprocessing_options = multiprocessing_options
    self._next_index, self._workers = 0, None

  def _start(self) -> None:
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags (outside app.run)
      flags.FLAGS.mark_as_parsed()
    self._close_workers()
    self._workers = iter(self._dataset[self._next_index:].to_iter_dataset(self._read_options)
                         .mp_prefetch(self._multiprocessing_options,
                                      worker_init_fn=_exit_with_parent))

  def __next__(self):
    if self._workers is None:
      self._start()
    batch = next(self._workers)
    self._next_index += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"next_index": self._next_index}

  def set_state(self, state: dict[str, Any]) -> None:
    self._close_workers()
    self._next_index = int(state["next_index"])

  def start_prefetch(self) -> None:
    if self._workers is None:
      self._start()

  def _close_workers(self) -> None:
    if self._workers is not None:
      self._workers.close()
      self._workers = None

  def close(self) -> None:
    self._close_workers()
    super().close()
