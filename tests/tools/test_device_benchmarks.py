"""tools/device_benchmarks.py on a CPU in its tiny mode (the code path the accelerator runs),
and tools/benchmark.py's video steps. Timings are checked for sense, never for speed."""

import math
import os
import shutil
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark  # noqa: E402
import device_benchmarks  # noqa: E402
from conftest import tiny_clip_config, typed  # noqa: E402

from jax_ssl import config as config_lib  # noqa: E402
from jax_ssl import perf  # noqa: E402

TINY = ("data2vec2_vit_b16", "videomae_vit_b")  # a latent-prediction and a video benchmark


def _table(section: str) -> dict[str, list[str]]:
  """The section's table rows by benchmark name: their cells."""
  rows = {}
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("| ") and cells[0] in device_benchmarks.BY_NAME:
      rows[cells[0]] = cells
  return rows


def test_tiny_run_writes_the_section_with_consistent_rows(tmp_path):
  output = tmp_path / "BENCHMARKS.md"
  shutil.copy(os.path.join(ROOT, "BENCHMARKS.md"), output)
  original = output.read_text()
  jsonl = tmp_path / "rows.jsonl"
  rows = device_benchmarks.main(["--tiny", "--in-process", "--devices", "1",
                                 "--only", ",".join(TINY), "--output", str(output),
                                 "--jsonl", str(jsonl)])
  assert [r["name"] for r in rows] == list(TINY)
  assert len(jsonl.read_text().splitlines()) == len(TINY)
  text = output.read_text()
  assert text.startswith(original.rstrip("\n"))  # the other sections are untouched
  before, section, after = device_benchmarks._split(text)  # pylint: disable=protected-access
  assert section and not after
  kind = jax.devices()[0].device_kind
  assert f"- Device: `{kind}` ({jax.devices()[0].platform}) x 1" in section
  assert "- Command: `python tools/device_benchmarks.py --tiny --in-process" in section
  table = _table(section)
  assert sorted(table) == sorted(TINY)
  assert device_benchmarks.previous_rows(section) == rows  # what a later --only run merges

  for row in rows:
    assert "error" not in row, row
    bench = device_benchmarks.BY_NAME[row["name"]]
    config = benchmark.load_config(*device_benchmarks.settings_for(bench, tiny=True,
                                                                    device_count=1))
    assert row["device_kind"] == kind and row["global_batch_size"] == 2
    step = row["trainer_step_s"]
    assert math.isfinite(step) and step > 0 and row["timed_steps"] == 2
    assert math.isfinite(row["first_loss"]) and math.isfinite(row["last_loss"])
    assert row["examples_per_s"] == pytest.approx(2 / step)
    assert row["views_per_s"] == pytest.approx(2 * row["views_per_example"] / step)
    # MFU = model FLOPs per step / step time / the peak of the device kind and dtype.
    assert row["model_flops"] > 0
    peak = perf.peak_flops_per_second(jax.devices()[:1], row["dtype"])
    assert row["peak_flops_per_s"] == pytest.approx(peak)
    assert row["model_flops_per_second"] == pytest.approx(row["model_flops"] / step)
    assert row["mfu"] == pytest.approx(row["model_flops"] / step / peak)
    assert 0 < row["mfu"] < 1
    # On a CPU memory_stats() keeps nothing: XLA's buffer assignment of the step.
    assert row["peak_memory_source"] == "memory_analysis"
    assert row["peak_memory_bytes"] == row["trainer_peak_bytes"] > 0
    cells = table[row["name"]]
    assert cells[7] == f"{step:.4f}"
    assert cells[12] == f"{100 * row['mfu']:.4g}"
    assert cells[13] == f"{row['peak_memory_bytes'] / 2**30:.4g} (XLA)"
    # The synthetic batch has the shapes the config implies, as the trainer feeds it.
    views = config_lib.view_configs(config)
    if row["unit"] == "clips":
      frames = config.clips.num_frames
      side = benchmark.default_frame_size(config)
      assert side >= config.augment.output_size
      assert row["input_layout"] == "clips"
      assert row["batch_shapes"] == {"clips": [[2, frames, side, side, 3]] * len(views),
                                     "speeds": [2, len(views)]}
      size = views[0].output_size
      assert cells[5] == f"{len(views)} x {frames}x{size}x{size} clip"
    else:
      assert row["input_layout"] == "views"  # ImageNet: the host's crops
      assert row["batch_shapes"] == {"views": [[2, v.output_size, v.output_size, 3]
                                               for v in views]}


def _row(name, kind="NVIDIA H100 80GB HBM3", step=0.5, command="python tools/device_benchmarks.py"):
  return dict(name=name, issue=device_benchmarks.BY_NAME[name].issue, config="c.py",
              device_kind=kind, platform="gpu", device_count=1, jax_version="0.11.0",
              dtype="bfloat16", backbone="vit_base", per_device_batch=32, views_per_example=1,
              unit="images", num_frames=None, view_size=224, timed_steps=300,
              trainer_step_s=step, examples_per_s=32 / step, views_per_s=32 / step,
              trainer_compile_s=40.0, model_flops=2e14 * step, model_flops_per_second=2e14,
              mfu=2e14 / 989.4e12, peak_memory_bytes=30 * 2**30,
              peak_memory_source="memory_stats", command=command)


def test_a_partial_rerun_keeps_the_other_rows_of_the_same_device(tmp_path):
  output = tmp_path / "B.md"
  output.write_text("# Benchmarks\n\nintro\n\n## Other\n\nkept\n")
  device_benchmarks.write_section(str(output), [_row("cvrl_r3d50"), _row("ijepa_vit_b16")])
  device_benchmarks.write_section(str(output), [_row("ijepa_vit_b16", step=0.25, command="again")])
  text = output.read_text()
  assert text.startswith("# Benchmarks\n\nintro\n\n## Other\n\nkept\n\n## Latent")
  _, section, _ = device_benchmarks._split(text)  # pylint: disable=protected-access
  table = _table(section)
  assert list(table) == ["ijepa_vit_b16", "cvrl_r3d50"]  # BENCHMARKS order
  assert table["ijepa_vit_b16"][7] == "0.2500" and table["cvrl_r3d50"][7] == "0.5000"
  assert table["ijepa_vit_b16"][12] == "20.21"  # 2e14 / 989.4e12
  assert table["ijepa_vit_b16"][13] == "30 (device)"
  assert "- Command: `python tools/device_benchmarks.py`" in section
  assert "- Command: `again`" in section
  # Another device kind: the old rows go.
  device_benchmarks.write_section(str(output), [_row("videomae_vit_b", kind="NVIDIA H200")])
  _, section, _ = device_benchmarks._split(output.read_text())  # pylint: disable=protected-access
  assert list(_table(section)) == ["videomae_vit_b"] and "`NVIDIA H200`" in section
  assert output.read_text().count("## Latent") == 1


def test_build_step_makes_the_trainers_video_batch_and_a_finite_step():
  config = typed(tiny_clip_config("cvrl"))
  assert benchmark.is_video_config(config) and benchmark.input_layout(config) == "clips"
  step_fn, _, _, _, state, batch, rng, _, _ = benchmark.build_step(config, 1, 20, num_devices=1)
  views = len(config_lib.view_configs(config))
  assert views == 2
  assert [c.shape for c in batch["clips"]] == [(16, config.clips.num_frames, 20, 20, 1)] * views
  assert batch["clips"][0].dtype == np.uint8 and batch["speeds"].shape == (16, views)
  state, metrics = step_fn(state, batch, rng)
  assert np.isfinite(float(metrics["loss"])) and float(metrics["nonfinite"]) == 0.0
  assert float(metrics["grad_norm"]) > 0


def test_the_pipeline_benchmark_reads_the_split_as_the_trainer(fake_fmnist):
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  source_dir, data_dir = fake_fmnist
  held = benchmark.benchmark_pipeline(typed(tiny_config(source_dir, data_dir,
                                                         total_steps=100)), batches=4)
  assert held["pipeline_source"] == "ArraySource" and held["pipeline_images_per_s"] > 0
  assert held["pipeline_cpu_ms_per_batch"] >= 0 and held["pipeline_load_s"] >= 0
  # 6 steps of 32 read 192 of the 512 records: from disk, as the trainer reads them.
  short = benchmark.benchmark_pipeline(typed(tiny_config(source_dir, data_dir)), batches=4)
  assert short["pipeline_source"] == "CheckedSource"
  off = benchmark.benchmark_pipeline(typed(tiny_config(
      source_dir, data_dir, total_steps=100, **{"dataset.in_memory_max_bytes": 0})), batches=4)
  assert off["pipeline_source"] == "CheckedSource"
