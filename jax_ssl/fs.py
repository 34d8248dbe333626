"""Paths on any filesystem: local folders and URLs (`gs://`, `s3://`, ...) through etils.epath.

A TPU pod's hosts share no disk, so a workdir (and the dataset) may live in a bucket.
Everything the trainer, `jax_ssl.evaluate`, `jax_ssl.compare` and the report read or write
under a workdir goes through `etils.epath.Path` (fsspec: gcsfs for `gs://`), as Orbax does for
its own files (orbax/checkpoint/_src/path/); Orbax writes the arrays through TensorStore's
GCS driver and the dataset's array_record files are read by array_record's own GCS client.
A local path behaves exactly as with `open` and `os` (epath's os backend), so only URLs take
the paths below that differ:

* an object store has no directories (nothing to create) and no append: a file that grows
  (metrics.jsonl, config_history.jsonl) is rewritten whole (`AppendableText`);
* TensorBoard's events go through epath too (`summary_writer`), not tensorboardX's own GCS
  writer (google-cloud-storage, another client and another set of credentials).

The clients are an optional extra (`pip install 'jax_ssl[gcs]'`); `check_client` turns a
missing one into one line at the entry point.
"""

from __future__ import annotations

import io
import os
import re

from etils import epath

from jax_ssl.errors import ConfigError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# URL scheme -> (the fsspec module epath uses for it, what it is, how to install it).
CLIENTS = {
    "gs": ("gcsfs", "the Google Cloud Storage client", "pip install 'jax_ssl[gcs]'"),
    "s3": ("s3fs", "the S3 client", "pip install s3fs"),
    "az": ("adlfs", "the Azure Blob Storage client", "pip install adlfs"),
    "hf": ("huggingface_hub", "the Hugging Face Hub client", "pip install huggingface_hub"),
}


def scheme(path: str | os.PathLike | None) -> str | None:
  """'gs' for 'gs://bucket/run'; None for a local path (or None)."""
  match = _SCHEME.match(os.fspath(path)) if path else None
  return match.group(1).lower() if match else None


def is_url(path: str | os.PathLike | None) -> bool:
  return scheme(path) is not None


def check_client(path: str | None, what: str) -> None:
  """Raises ConfigError (one line) if `path` is a URL whose client is not installed, or whose
  scheme epath does not support. `what` names where it came from (`--workdir`)."""
  name = scheme(path)
  if name is None:
    return
  if name not in CLIENTS:
    raise ConfigError(f"{what} {path}: {name}:// is not supported; use a local path or one of "
                      f"{', '.join(f'{s}://' for s in CLIENTS)}")
  module, client, install = CLIENTS[name]
  try:
    __import__(module)
  except ImportError:
    raise ConfigError(f"{what} {path} needs {client}: {install}") from None


def absolute(path: str) -> str:
  """A local path with `~` expanded, relative to the current directory; a URL unchanged
  (`os.path.abspath("gs://b/run")` would be the local folder `./gs:/b/run`)."""
  return path if is_url(path) else os.path.abspath(os.path.expanduser(path))


def path(p: str | os.PathLike) -> epath.Path:
  return epath.Path(p)


def join(base: str | os.PathLike, *parts: str) -> str:
  """`base/part/...` as a string (a URL stays a URL)."""
  return os.fspath(epath.Path(base).joinpath(*parts))


def parent(p: str | os.PathLike) -> str:
  return os.fspath(epath.Path(p).parent)


def make_dirs(p: str | os.PathLike) -> None:
  """`os.makedirs(p, exist_ok=True)`; nothing for a URL (an object store has no folders)."""
  if not is_url(p):
    epath.Path(p).mkdir(parents=True, exist_ok=True)


def append_text(p: str | os.PathLike, text: str) -> None:
  """Appends `text` to the file `p` (created if absent); a URL's object is rewritten whole."""
  target = epath.Path(p)
  if not is_url(p):
    with target.open("a") as f:
      f.write(text)
    return
  old = target.read_text() if target.exists() else ""
  target.write_text(old + text)


class AppendableText:
  """A text file written as `lines` and then appended to, line by line: locally appended in
  place; on an object store (no append) the whole object is rewritten from the lines kept in
  memory, so each `append` leaves a complete file (a kill loses nothing already written)."""

  def __init__(self, p: str | os.PathLike, lines: list[str]):
    self.path = epath.Path(p)
    self._remote = is_url(p)
    self._lines = list(lines) if self._remote else None
    with self.path.open("w") as f:
      f.writelines(lines)

  def append(self, line: str) -> None:
    if self._remote:
      self._lines.append(line)
      self.path.write_text("".join(self._lines))
    else:
      with self.path.open("a") as f:
        f.write(line)


class _RemoteEventFile:
  """A tensorboardX record file on a URL: the records written so far, in memory, uploaded
  whole through epath at each flush (tensorboardX flushes every `flush_secs` and on close), as
  tensorboardX's own GCS writer does with google-cloud-storage (record_writer.py)."""

  def __init__(self, p: str):
    self.path = epath.Path(p)
    self.buffer = io.BytesIO()

  def write(self, data: bytes) -> None:
    self.buffer.write(data)

  def flush(self) -> None:
    self.path.write_bytes(self.buffer.getvalue())

  def close(self) -> None:
    self.flush()


class _RemoteEventFiles:
  """tensorboardX's writer factory interface (record_writer.register_writer_factory)."""

  def open(self, p: str) -> _RemoteEventFile:
    return _RemoteEventFile(p)

  def directory_check(self, p: str) -> None:
    del p  # no folders on an object store


def summary_writer(logdir: str):
  """A tensorboardX SummaryWriter for `logdir`, a local folder or a URL. For a URL the events
  go through epath: tensorboardX picks its writer by the path's scheme from a registry,
  where this registers ours (for that scheme only, when a URL workdir asks for it)."""
  from tensorboardX import SummaryWriter, record_writer  # pylint: disable=g-import-not-at-top
  name = scheme(logdir)
  if name is not None and not isinstance(record_writer.REGISTERED_FACTORIES.get(name),
                                         _RemoteEventFiles):
    record_writer.register_writer_factory(name, _RemoteEventFiles())
  return SummaryWriter(logdir)


def create_exclusive(p: str, data: str) -> bool:
  """Creates the object `p` holding `data` unless it exists; False if it exists.

  On GCS the upload carries `ifGenerationMatch=0` (gcsfs `mode="create"`): GCS creates the
  object only if none exists, atomically, and a concurrent creator gets 412, which gcsfs
  raises as FileExistsError. A store (or emulator) that ignores the precondition overwrites:
  the existence check before it catches every creator that comes after a finished one.
  """
  import fsspec  # pylint: disable=g-import-not-at-top
  filesystem, key = fsspec.core.url_to_fs(p)
  if filesystem.exists(key):
    return False
  try:
    filesystem.pipe_file(key, data.encode(), mode="create")
  except FileExistsError:
    return False
  return True
