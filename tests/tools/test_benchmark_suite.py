"""tools/benchmark_suite.py renders BENCHMARKS.md from the benchmark's JSON (no timing here)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
import benchmark_suite  # noqa: E402

COMMON = dict(cpu="Test CPU", cpu_count=2, device="cpu", device_count=1, jax_version="0.10.2",
              max_rss_bytes=512 * 2**20, backend="cpu_kernels", host_malloc_retained=True)


def test_render_tables_ratios_and_ceiling_share():
  simclr = dict(COMMON, global_batch_size=256, views_per_image=2, trainer_step_s=0.5,
                trainer_images_per_s=512.0, trainer_compile_s=4.0, trainer_flops=40e9,
                trainer_gflops_per_s=80.0, trainer_peak_bytes=300 * 2**20,
                matmul_gflops_per_s=160.0, pipeline_images_per_s=2048.0, pipeline_margin=4.0)
  mae = dict(COMMON, global_batch_size=256, views_per_image=1, trainer_step_s=0.25,
             trainer_images_per_s=1024.0, trainer_compile_s=9.0, trainer_flops=10e9,
             trainer_gflops_per_s=40.0, trainer_peak_bytes=100 * 2**20)
  torch_row = dict(COMMON, model_step_s=0.4, torch_model_step_s=0.3, jax_over_torch_speed=0.75,
                   torch_version="2.13.0+cpu", xla_convolutions_model_step_s=0.6)
  text = benchmark_suite.render([("mae", mae), ("simclr", simclr)], [("ResNet", torch_row)],
                                "python tools/benchmark_suite.py")
  assert "f32 matmul ceiling (2048^3, jitted): 160.0 GFLOP/s" in text
  assert "| simclr | 256 | 2 | 0.500 | 512 | 4.0 | 40.0 | 80.0 | 50.0 | 300 | 512 |" in text
  assert "| mae | 256 | 1 | 0.250 | 1024 | 9.0 | 10.0 | 40.0 | 25.0 | 100 | 512 |" in text
  assert "| 2048 | 512 | 4.0x |" in text
  assert "| ResNet | 0.400 | 0.300 | 0.75x | 2.13.0+cpu | 0.600 |" in text
  assert "- Speed backend: `cpu_kernels` (`config.backend=auto`" in text
  assert "BatchNorm + residual + ReLU as one custom VJP" in text
  assert "freed blocks kept for reuse = True" in text


def test_a_failed_first_benchmark_still_renders():
  mae = dict(COMMON, global_batch_size=256, views_per_image=1, trainer_step_s=0.25,
             trainer_images_per_s=1024.0, trainer_compile_s=9.0, trainer_flops=10e9,
             trainer_gflops_per_s=40.0, trainer_peak_bytes=100 * 2**20)
  text = benchmark_suite.render([("simclr", {"error": "RuntimeError: out of memory"}),
                                 ("mae", mae)], [], "python tools/benchmark_suite.py")
  assert "| simclr | failed: RuntimeError: out of memory |" in text
  assert "- Machine: Test CPU, 2 CPUs, device `cpu` x 1, jax 0.10.2" in text
  assert "| mae | 256 | 1 | 0.250 | 1024 | 9.0 | 10.0 | 40.0 | n/a | 100 | 512 |" in text
  everything_failed = benchmark_suite.render([("simclr", {"error": "boom"})], [], "cmd")
  assert "- Machine: n/a, n/a CPUs, device `n/a` x n/a, jax n/a" in everything_failed


def test_conv_layers_table_matches_the_models():
  """tools/conv_layers.py times the models' convolutions: its table must list exactly them."""
  import collections
  from flax import nnx
  import conv_layers
  from jax_ssl.models.resnet import make_backbone
  for name, backbone, width, in_channels in (("small", "resnet_small", 16, 1),
                                             ("local", "resnet_small", 16, 1),
                                             ("resnet18", "resnet18", 64, 3)):
    model = make_backbone(backbone, width=width, stem="cifar", in_channels=in_channels,
                          rngs=nnx.Rngs(0))
    convs = collections.Counter(
        (m.in_features, m.out_features, m.kernel_size[0], m.strides[0])
        for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv))
    table = collections.Counter()
    for _, c_in, c_out, kernel, stride, _, count in conv_layers.LAYERS[name][1]:
      table[(c_in, c_out, kernel, stride)] += count
    assert table == convs, name
  rows = conv_layers.layer_times("small", batch=2, repeats=1)
  assert [r["layer"] for r in rows][:2] == ["stem", "stage1"]
  assert all(r["fwd"] > 0 and r["dx"] > 0 and r["dw"] > 0 for r in rows)
  # The kernels time every op they apply to: all but the stem's input gradient (1 channel).
  assert rows[0]["dx_kernel"] is None and rows[0]["fwd_kernel"] > 0
  assert all(r[op + "_kernel"] > 0 for r in rows[1:] for op in conv_layers.OPS)
  # Winograd is timed for the 3x3 stride-1 layers only; auto never picks it at 16 channels.
  assert [r["layer"] for r in rows if r["fwd_winograd"] is not None] == [
      "stem", "stage1", "stage2.conv2", "stage3.conv2", "stage4.conv2"]
  assert all(r[op + "_winograd"] > 0 for r in rows if r["fwd_winograd"] for op in conv_layers.OPS)
  assert not any(r[op + "_auto"] == "winograd" for r in rows for op in conv_layers.OPS)
  # The matrix product is timed for every kernel above 1x1 (not the shortcuts).
  assert [r["layer"] for r in rows if r["fwd_matmul"] is None] == [
      "stage2.shortcut", "stage3.shortcut", "stage4.shortcut"]
  assert all(r[op + "_matmul"] > 0 for r in rows if r["fwd_matmul"] for op in conv_layers.OPS)
  # The 12 px views' spatial sizes: on a CPU without AVX-512 the rule takes the product for
  # the last stage's 3x3 layers (2x2 outputs) and nothing else.
  import unittest.mock
  from jax_ssl.backends.cpu_kernels import build
  with unittest.mock.patch.object(build, "has_avx512", lambda: False):
    local = conv_layers.layer_times("local", batch=2, repeats=1)
  assert [r["layer"] for r in local if r["fwd_auto"] == "matmul"] == [
      "stage4.conv1", "stage4.conv2"]
