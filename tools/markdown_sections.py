"""Sections of a markdown file that several tools write (BENCHMARKS.md), each its own.

A section is the block from a "## heading" line to the next "## " line (or the end of the
file); the preamble is what comes before the first one. A tool replaces the section(s) it
owns with `write_sections`: every other section, their order and the preamble are kept byte
for byte; a section that is absent is appended at the end; the file is replaced atomically
(a temporary file in the same folder, then `os.replace`). Lines inside ``` or ~~~ fences are
never headings; headings are compared whole-line ("## Input" is not "## Input pipeline").
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from typing import Iterable

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def read(path: str) -> str:
  """The file's text ("" when it does not exist); line endings kept as they are."""
  try:
    with open(path, encoding="utf-8", newline="") as f:
      return f.read()
  except FileNotFoundError:
    return ""


def _line(text: str, start: int) -> tuple[str, int]:
  """(the line at `start` without its line ending, the offset of the next line)."""
  end = text.find("\n", start)
  end = len(text) if end < 0 else end + 1
  return text[start:end].rstrip("\r\n"), end


def _heading_offsets(text: str) -> list[int]:
  """Offsets of the "## " lines outside fenced code blocks."""
  offsets, fence, start = [], None, 0
  while start < len(text):
    line, following = _line(text, start)
    match = _FENCE.match(line)
    if fence is not None:
      if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
          and not line.strip()[len(match.group(1)):].strip():
        fence = None
    elif match:
      fence = match.group(1)
    elif line.startswith("## "):
      offsets.append(start)
    start = following
  return offsets


def split(text: str) -> tuple[str, list[tuple[str, str]]]:
  """(preamble, [(heading line, its block), ...]): the blocks run from their heading line
  to the next heading; "".join of the preamble and the blocks is `text`."""
  offsets = _heading_offsets(text)
  ends = offsets[1:] + [len(text)]
  blocks = [(_line(text, s)[0].rstrip(), text[s:e]) for s, e in zip(offsets, ends)]
  return text[:offsets[0] if offsets else len(text)], blocks


def section(text: str, heading: str) -> str:
  """The block of `heading` in `text` ("" when absent; the first one if several)."""
  return next((block for h, block in split(text)[1] if h == heading.rstrip()), "")


def _separated(before: str) -> str:
  """`before` followed by a blank line (nothing removed; "" stays "")."""
  if before and not before.endswith("\n"):
    before += "\n"
  if before and not before.endswith("\n\n"):
    before += "\n"
  return before


def replace_section(text: str, heading: str, block: str, preamble: str | None = None) -> str:
  """`text` with the block of `heading` replaced by `block` (which starts with the heading
  line and holds no other "## " heading), or `block` appended when absent. Everything else
  is kept; `preamble` is set only where the text has none (empty or blank)."""
  heading = heading.rstrip()
  block_preamble, block_blocks = split(block)
  if block_preamble or [h for h, _ in block_blocks] != [heading]:
    raise ValueError(f"the block must start with {heading!r} and hold no other '## ' heading")
  block = block.rstrip("\n") + "\n"
  before, blocks = split(text)
  separate = False  # a blank line after the preamble: only where it is new or was alone
  if preamble is not None and not before.strip():
    before, separate = preamble, True
  index = next((i for i, (h, _) in enumerate(blocks) if h == heading), None)
  if index is None:
    if blocks:
      blocks[-1] = (blocks[-1][0], _separated(blocks[-1][1]))
    else:
      separate = True
    blocks.append((heading, block))
  else:
    blocks[index] = (heading, block + ("\n" if index + 1 < len(blocks) else ""))
  return (_separated(before) if separate else before) + "".join(b for _, b in blocks)


def write_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file in the same folder and `os.replace`
  (the file keeps its permissions; a symlink's target is written)."""
  target = os.path.realpath(path)
  folder = os.path.dirname(target) or "."
  try:
    mode = stat.S_IMODE(os.stat(target).st_mode)
  except FileNotFoundError:
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
  fd, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(target) + ".",
                                   suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, target)
  except BaseException:
    if os.path.exists(temporary):
      os.unlink(temporary)
    raise


def write_sections(path: str, blocks: Iterable[tuple[str, str]],
                   preamble: str | None = None) -> str:
  """Replaces (or appends, in the given order) each (heading, block) of `blocks` in the
  markdown file `path` (made if missing), keeping everything else; `preamble` is set only
  where the file has none. Returns the text written."""
  text = read(path)
  for heading, block in blocks:
    text = replace_section(text, heading, block, preamble)
  write_atomic(path, text)
  return text
