"""tools/markdown_sections.py: each tool rewrites only its own sections of BENCHMARKS.md
(no benchmark runs here: the writers get fabricated results)."""

import os
import stat
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark_input  # noqa: E402
import benchmark_suite  # noqa: E402
import device_benchmarks  # noqa: E402
import markdown_sections as ms  # noqa: E402

PAGE = ("# Title\n\nintro, kept\n\n"
        "## Input\n\nfirst  \n\n\n"
        "## Input pipeline\n\nold pipeline\n\n"
        "## Last\n\n```\n## not a heading\n```\nlast, no final newline")


def test_split_round_trips_and_ignores_fenced_lines():
  preamble, blocks = ms.split(PAGE)
  assert preamble == "# Title\n\nintro, kept\n\n"
  assert [h for h, _ in blocks] == ["## Input", "## Input pipeline", "## Last"]
  assert preamble + "".join(b for _, b in blocks) == PAGE
  assert ms.section(PAGE, "## Input") == "## Input\n\nfirst  \n\n\n"
  assert ms.section(PAGE, "## Absent") == ""


def test_a_middle_section_is_replaced_and_the_others_kept_byte_for_byte(tmp_path):
  path = tmp_path / "B.md"
  path.write_bytes(PAGE.encode())
  text = ms.write_sections(str(path), [("## Input pipeline", "## Input pipeline\n\nnew\n")])
  assert path.read_bytes().decode() == text == PAGE.replace(
      "## Input pipeline\n\nold pipeline\n\n", "## Input pipeline\n\nnew\n\n")
  # The heading that is a prefix of it is another section: replacing it leaves this one.
  text = ms.replace_section(text, "## Input", "## Input\n\nshort")
  assert text == PAGE.replace("## Input\n\nfirst  \n\n\n", "## Input\n\nshort\n\n").replace(
      "old pipeline", "new")
  assert [name for name in os.listdir(tmp_path)] == ["B.md"]  # no temporary file left


def test_an_absent_section_is_appended_after_the_others():
  text = ms.replace_section(PAGE, "## Input p", "## Input p\n\nrows\n")
  assert text == PAGE + "\n\n## Input p\n\nrows\n"
  # The last section's own text is kept; only a blank line is added where it lacks one.
  assert ms.replace_section("# T\n\n## A\nx\n\n", "## B", "## B\ny") == \
      "# T\n\n## A\nx\n\n## B\ny\n"
  assert ms.replace_section("just a preamble", "## B", "## B\n") == "just a preamble\n\n## B\n"


def test_a_new_or_empty_file_gets_the_preamble_then_the_sections(tmp_path):
  for path in (tmp_path / "new.md", tmp_path / "empty.md"):
    if path.name == "empty.md":
      path.write_text("")
    ms.write_sections(str(path), [("## A", "## A\n\na\n"), ("## B", "## B\n\nb\n")],
                      preamble="# Title\n")
    assert path.read_text() == "# Title\n\n## A\n\na\n\n## B\n\nb\n"
  # A preamble is never set over one that is there.
  assert ms.replace_section("# Mine\n\n## A\n", "## A", "## A\nnew\n", preamble="# Theirs\n") \
      == "# Mine\n\n## A\nnew\n"
  # Nor without one asked for.
  assert ms.replace_section("", "## A", "## A\n") == "## A\n"


def test_a_block_must_be_exactly_its_section():
  for block in ("text\n## A\n", "## A\n## B\n", "## Ab\n"):
    with pytest.raises(ValueError):
      ms.replace_section(PAGE, "## A", block)


def test_the_atomic_write_keeps_the_mode_and_the_line_endings(tmp_path):
  path = tmp_path / "B.md"
  path.write_bytes(b"# T\r\n\r\n## A\r\nold\r\n\r\n## B\r\nkept\r\n")
  os.chmod(path, 0o640)
  ms.write_sections(str(path), [("## A", "## A\nnew\n")])
  assert path.read_bytes() == b"# T\r\n\r\n## A\nnew\n\n## B\r\nkept\r\n"
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def _device_row(name="ijepa_vit_b16"):
  return dict(name=name, issue=device_benchmarks.BY_NAME[name].issue, config="c.py",
              device_kind="NVIDIA H100 80GB HBM3", platform="gpu", device_count=1,
              jax_version="0.11.0", dtype="bfloat16", backbone="vit_base", per_device_batch=32,
              views_per_example=1, unit="images", num_frames=None, view_size=224,
              timed_steps=300, trainer_step_s=0.5, examples_per_s=64.0, views_per_s=64.0,
              trainer_compile_s=40.0, model_flops=1e14, model_flops_per_second=2e14,
              mfu=0.2, peak_memory_bytes=30 * 2**30, peak_memory_source="memory_stats",
              command="python tools/device_benchmarks.py")


def _suite_results():
  common = dict(cpu="Test CPU", cpu_count=2, device="cpu", device_count=1, jax_version="0.10.2",
                max_rss_bytes=512 * 2**20, backend="cpu_kernels", host_malloc_retained=True)
  simclr = dict(common, global_batch_size=256, views_per_image=2, trainer_step_s=0.5,
                trainer_images_per_s=512.0, trainer_compile_s=4.0, trainer_flops=40e9,
                trainer_gflops_per_s=80.0, trainer_peak_bytes=300 * 2**20,
                matmul_gflops_per_s=160.0, pipeline_images_per_s=2048.0, pipeline_margin=4.0)
  torch_row = dict(common, model_step_s=0.4, torch_model_step_s=0.3, jax_over_torch_speed=0.75,
                   torch_version="2.13.0+cpu", xla_convolutions_model_step_s=0.6)
  return [("simclr", simclr)], [("ResNet", torch_row)]


def test_every_tool_keeps_the_sections_of_the_others(tmp_path):
  path = tmp_path / "BENCHMARKS.md"
  path.write_bytes(open(os.path.join(ROOT, "BENCHMARKS.md"), "rb").read())
  original = path.read_text()
  original_preamble, original_blocks = ms.split(original)
  host = ms.section(original, benchmark_input.SECTION)
  assert host  # BENCHMARKS.md holds the host input section

  device_benchmarks.write_section(str(path), [_device_row()])
  with_device = path.read_text()
  assert with_device.startswith(original)  # appended, nothing else touched
  device = ms.section(with_device, device_benchmarks.SECTION)
  assert device_benchmarks.previous_rows(device)[0]["name"] == "ijepa_vit_b16"

  # The suite: its three sections replaced in place, the preamble (there already) and the
  # host input and device sections kept byte for byte, in their order.
  rows, torch_rows = _suite_results()
  text = benchmark_suite.write(str(path), rows, torch_rows, "python tools/benchmark_suite.py")
  assert path.read_text() == text
  preamble, blocks = ms.split(text)
  assert preamble == original_preamble
  assert [h for h, _ in blocks] == [h for h, _ in original_blocks] + [device_benchmarks.SECTION]
  assert dict(blocks)[benchmark_input.SECTION] == host + "\n"  # no longer last: a blank line
  assert dict(blocks)[device_benchmarks.SECTION] == device
  _, fresh = benchmark_suite.render_parts(rows, torch_rows, "python tools/benchmark_suite.py")
  for heading, block in fresh:
    assert dict(blocks)[heading] == block + "\n"  # as render() writes it, each followed by one
  assert "| simclr | 256 | 2 | 0.500 | 512 |" in text and "| 2048 | 512 | 4.0x |" in text

  # benchmark_input --markdown: one row more in its table, everything else as it was.
  row = "| experiments/x.py | 2x224 | 500x375 | 2 | 900 | 450 | 400.0 | 2.25 | CPU |\n"
  after = benchmark_input.add_markdown_row(str(path), row)
  assert after == text.replace(host, host + row)
  # And the device tool again: its section replaced, the host input rows kept.
  device_benchmarks.write_section(str(path), [_device_row("cvrl_r3d50")])
  assert ms.section(path.read_text(), benchmark_input.SECTION) == host + row + "\n"
  assert [r["name"] for r in device_benchmarks.previous_rows(
      ms.section(path.read_text(), device_benchmarks.SECTION))] == ["ijepa_vit_b16", "cvrl_r3d50"]


def test_the_suite_on_a_new_file_writes_what_render_makes(tmp_path):
  rows, torch_rows = _suite_results()
  path = tmp_path / "B.md"
  benchmark_suite.write(str(path), rows, torch_rows, "cmd")
  assert path.read_text() == benchmark_suite.render(rows, torch_rows, "cmd")


def test_benchmark_input_makes_its_section_where_absent(tmp_path):
  path = tmp_path / "OUT.md"
  row = "| c.py | 2x224 | 500x375 | 1 | 10 | 10 | — | — | CPU |\n"
  benchmark_input.add_markdown_row(str(path), row)
  benchmark_input.add_markdown_row(str(path), row.replace("10", "20"))
  text = path.read_text()
  assert text.startswith(benchmark_input.SECTION + "\n\nGenerated by `tools/benchmark_input.py`")
  assert text.endswith(benchmark_input.TABLE_HEADER + row + row.replace("10", "20"))
  # A section without the table gets one, after its own text.
  path.write_text("# T\n\n## Host input path (ImageNet-class data)\n\nnotes\n\n## Other\n\nx\n")
  benchmark_input.add_markdown_row(str(path), row)
  assert path.read_text() == ("# T\n\n## Host input path (ImageNet-class data)\n\nnotes\n\n"
                              + benchmark_input.TABLE_HEADER + row + "\n## Other\n\nx\n")
