"""tools/benchmark_suite.py renders BENCHMARKS.md from the benchmark's JSON (no timing here)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import benchmark_suite  # noqa: E402

COMMON = dict(cpu="Test CPU", cpu_count=2, device="cpu", device_count=1, jax_version="0.10.2",
              max_rss_bytes=512 * 2**20)


def test_render_tables_ratios_and_ceiling_share():
  simclr = dict(COMMON, global_batch_size=256, views_per_image=2, trainer_step_s=0.5,
                trainer_images_per_s=512.0, trainer_compile_s=4.0, trainer_flops=40e9,
                trainer_gflops_per_s=80.0, trainer_peak_bytes=300 * 2**20,
                matmul_gflops_per_s=160.0, pipeline_images_per_s=2048.0, pipeline_margin=4.0)
  mae = dict(COMMON, global_batch_size=256, views_per_image=1, trainer_step_s=0.25,
             trainer_images_per_s=1024.0, trainer_compile_s=9.0, trainer_flops=10e9,
             trainer_gflops_per_s=40.0, trainer_peak_bytes=100 * 2**20)
  torch_row = dict(COMMON, model_step_s=0.4, torch_model_step_s=0.3, jax_over_torch_speed=0.75,
                   torch_version="2.13.0+cpu")
  text = benchmark_suite.render([("mae", mae), ("simclr", simclr)], [("ResNet", torch_row)],
                                "python tools/benchmark_suite.py")
  assert "f32 matmul ceiling (2048^3, jitted): 160.0 GFLOP/s" in text
  assert "| simclr | 256 | 2 | 0.500 | 512 | 4.0 | 40.0 | 80.0 | 50.0 | 300 | 512 |" in text
  assert "| mae | 256 | 1 | 0.250 | 1024 | 9.0 | 10.0 | 40.0 | 25.0 | 100 | 512 |" in text
  assert "| 2048 | 512 | 4.0x |" in text
  assert "| ResNet | 0.400 | 0.300 | 0.75x | 2.13.0+cpu |" in text
