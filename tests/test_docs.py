"""README.md and docs/: short, no dead relative links, and the commands CI runs.

README is the front door (STYLE.md, habit 13): at most 150 lines, its test command the one
`.ci/run` runs, its method table complete; every page under docs/ is reachable from it.
"""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _read(path: str) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def relative_links(path: str) -> list[str]:
  """The relative link targets of a Markdown file, outside fenced code blocks, without their
  #anchors (URLs with a scheme and in-page anchors left out)."""
  text = _FENCE.sub("", _read(path))
  targets = [t.split("#")[0] for t in _LINK.findall(text)]
  return [t for t in targets if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def _pages() -> list[str]:
  return [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def test_relative_links_finds_links_outside_code_only(tmp_path):
  page = tmp_path / "page.md"
  page.write_text("[a](docs/a.md#x) [`b`](../b) [c](https://x.org/c) [d](#top)\n"
                  "```bash\n[e](not_a_link.md)\n```\n")
  assert relative_links(str(page)) == ["docs/a.md", "../b"]


def test_readme_is_at_most_150_lines():
  assert len(_read(README).splitlines()) <= 150


def test_every_relative_link_points_to_an_existing_file():
  dead = [f"{os.path.relpath(page, ROOT)}: {target}" for page in _pages()
          for target in relative_links(page)
          if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(page), target)))]
  assert not dead, f"dead links: {dead}"


def test_every_docs_page_is_linked_from_readme():
  linked = {os.path.normpath(os.path.join(ROOT, t)) for t in relative_links(README)}
  orphans = [os.path.relpath(p, ROOT) for p in _pages()[1:] if os.path.normpath(p) not in linked]
  assert not orphans, f"docs pages README does not link: {orphans}"


def test_readme_test_command_is_the_one_ci_runs():
  """`.ci/run` runs README's "Run the tests" command, character for character but for
  apt-get's `-qq` (quiet output in CI logs)."""
  section = _read(README).split("## Run the tests", 1)[1]
  readme_command = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1)
  ci_command = _read(os.path.join(ROOT, ".ci", "run")).strip().splitlines()[-1]
  assert "\n" not in readme_command and "pytest" in readme_command
  assert ci_command.replace(" -qq", "") == readme_command


def test_readme_method_table_lists_every_registered_method():
  from jax_ssl import methods  # pylint: disable=g-import-not-at-top
  section = _read(README).split("## Methods", 1)[1].split("\n## ", 1)[0]
  rows = set(re.findall(r"^\| `([a-z0-9_+]+)` \|", section, re.M))
  assert rows == set(methods.METHODS) | {"a+b"}
