"""One training per workdir: `DIR/train.lock` names the process that trains in DIR.

Two trainings on one workdir would interleave `metrics.jsonl` rows, TensorBoard files and
checkpoints. The trainer (process 0 of a multi-host run) creates the lock before it writes
anything and removes it when it ends, on errors and on SIGINT/SIGTERM too. The file holds the
pid, the host, the process's start time and the command:

* a lock of a live process is refused with one line naming it;
* a lock whose process is gone (same host: the pid is dead, or now belongs to a process
  started later) is stale, e.g. after a SIGKILL: it is taken over with a warning;
* a lock from another host cannot be checked from here: refused, naming the file to delete
  if you are sure that run is over.

The lock is created with `link(2)` of a complete file, so a reader never sees it half written
(also on NFS, where O_EXCL was not reliable).

A workdir in a bucket (`gs://...`, jax_ssl/fs.py) gets the same lock file, with weaker
guarantees, since no store offers link(2) and a process on another host cannot be checked:

* creation is atomic where the store has create-only-if-absent: on GCS the upload carries
  `ifGenerationMatch=0`, so of two trainings starting together exactly one gets the lock; a
  store that ignores the precondition (and the local GCS emulator) only refuses a training
  that starts after another one's lock exists;
* liveness is checked only for a lock written by this host (same hostname: its pid and start
  time, as above). A lock written on another host (a TPU pod's or a preempted VM's) is
  refused, naming the command that deletes it, even if that training was SIGKILLed; a
  training that ends or is stopped by SIGINT/SIGTERM removes its lock itself.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys

from jax_ssl import fs
from jax_ssl.errors import UserInputError

LOCK_FILE = "train.lock"


class WorkdirInUseError(UserInputError):
  """Another training holds the workdir's lock."""


class RunLock:
  """`acquire` once, `release` at the end (idempotent; only removes a lock this process holds)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = fs.join(workdir, LOCK_FILE)
    self.held = False

  def acquire(self) -> None:
    """Takes the lock, or raises WorkdirInUseError naming the training that holds it."""
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "process_start": _process_start(os.getpid()),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(getattr(sys, "orig_argv", sys.argv))}
    for _ in range(5):  # a lock that vanishes or goes stale between the tries: try again
      if _create(self.path, mine):
        self.held = True
        return
      holder = _read(self.path)
      if holder is None:  # released meanwhile
        continue
      if not isinstance(holder, dict):
        raise WorkdirInUseError(
            f"{self.workdir} has an unreadable lock {self.path} ({holder}); if no training runs "
            f"in {self.workdir}, delete that file{_delete_command(self.path)} and rerun")
      who = f"pid {holder.get('pid')} on {_host(holder)}, started {holder.get('started', '?')}"
      if holder.get("host") != mine["host"]:
        raise WorkdirInUseError(
            f"{self.workdir} is in use by another training ({who}); wait for it to end or use "
            f"another --workdir; if you are sure it no longer runs (another host's process cannot "
            f"be checked from here), delete {self.path}{_delete_command(self.path)} and rerun")
      if _alive(holder.get("pid"), holder.get("process_start")):
        raise WorkdirInUseError(
            f"{self.workdir} is in use by another training ({who}); wait for it to end, stop it "
            f"(kill -INT {holder.get('pid')} saves and stops it), or use another --workdir")
      if _read(self.path) == holder:  # still the stale one, not a lock taken meanwhile
        _remove(self.path)
        print(f"warning: took over the stale lock {self.path} ({who}; that process is gone)",
              flush=True)
    raise WorkdirInUseError(f"could not lock {self.workdir}: {self.path} keeps changing; "
                            f"another training is starting there")

  def release(self) -> None:
    if self.held:
      self.held = False
      holder = _read(self.path)
      if isinstance(holder, dict) and holder.get("pid") == os.getpid() and (
          holder.get("host") == socket.gethostname()):
        _remove(self.path)


def _create(path: str, content: dict) -> bool:
  """Creates `path` holding `content` atomically; False if it exists."""
  if fs.is_url(path):  # create-only-if-absent (fs.create_exclusive)
    return fs.create_exclusive(path, json.dumps(content))
  temporary = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"
  with open(temporary, "w") as f:
    json.dump(content, f)
  try:
    os.link(temporary, path)
    return True
  except FileExistsError:
    return False
  finally:
    _remove(temporary)


def _read(path: str) -> dict | str | None:
  """The lock's content; None if there is none; a string saying why if it does not parse."""
  try:
    text = fs.path(path).read_text()
  except FileNotFoundError:
    return None
  try:
    content = json.loads(text)
  except ValueError as e:
    return f"{type(e).__name__}: {e}"
  return content if isinstance(content, dict) else f"not a JSON object: {text[:80]!r}"


def _remove(path: str) -> None:
  try:
    fs.path(path).unlink()
  except FileNotFoundError:
    pass


def _delete_command(path: str) -> str:
  """` (gcloud storage rm PATH)` for a lock in a bucket, where `rm` does not reach it."""
  return f" (gcloud storage rm {path})" if fs.scheme(path) == "gs" else ""


def _host(holder: dict) -> str:
  host = holder.get("host")
  return f"this host ({host})" if host == socket.gethostname() else f"host {host}"


def proc_stat(pid: int) -> list[str] | None:
  """/proc/PID/stat from field 3 (the state) on; None where /proc is not available."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
  except OSError:
    return None


def _process_start(pid: int) -> str | None:
  """The process's start time in clock ticks since boot (field 22, Linux), which tells a
  reused pid apart."""
  stat = proc_stat(pid)
  return stat[19] if stat else None


def _alive(pid, process_start: str | None) -> bool:
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process: alive
    pass
  stat = proc_stat(pid)
  if stat is None:
    return True
  return stat[0] not in ("Z", "X") and (process_start is None or stat[19] == process_start)


def lock_workdir(workdir: str) -> RunLock:
  """Process 0 takes DIR/train.lock; in a multi-host run every process learns whether it
  could (the others would otherwise wait for process 0 at the first collective)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  lock = RunLock(workdir)
  error = None
  if jax.process_index() == 0:
    try:
      lock.acquire()
    except WorkdirInUseError as e:
      error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    if not int(multihost_utils.broadcast_one_to_all(np.int32(error is None))) and error is None:
      raise WorkdirInUseError(f"process 0 could not lock {workdir}; its output says why")
  if error is not None:
    raise error
  return lock
