"""Model FLOPs, peak FLOP/s and MFU (jax_ssl/perf.py) and their fields in metrics.jsonl."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import state_and_step, tiny_config, typed
from jax_ssl import backends, perf, sharding, train


@pytest.mark.parametrize("kind, dtype, peak", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4e12),
    ("NVIDIA H100 80GB HBM3", "float32", 494.7e12),  # TF32, JAX's default precision
    ("NVIDIA H100 PCIe", "bfloat16", 756e12),
    ("NVIDIA H100 NVL", "bfloat16", 835e12),
    ("NVIDIA H200", "bfloat16", 989.4e12),
    ("NVIDIA A100-SXM4-40GB", "float32", 156e12),
    ("NVIDIA A100 80GB PCIe", "bfloat16", 312e12),
    ("TPU v4", "bfloat16", 275e12),
    ("TPU v5 lite", "bfloat16", 197e12),  # v5e
    ("TPU v5p", "float32", 459e12),
    ("TPU v5", "bfloat16", 459e12),
    ("TPU v6 lite", "bfloat16", 918e12),  # v6e, Trillium
    ("TPU v4 lite", "bfloat16", None),  # an inference chip: not in the table, no mfu
    ("NVIDIA GeForce RTX 3090", "bfloat16", None),
])
def test_peak_table_by_device_kind(kind, dtype, peak):
  assert perf.device_peak_flops_per_second(kind, dtype) == peak


def test_peak_of_a_run_sums_its_devices_and_measures_a_cpu():
  gpus = [types.SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3",
                                process_index=i // 4) for i in range(8)]
  assert perf.peak_flops_per_second(gpus, "bfloat16") == pytest.approx(8 * 989.4e12)
  unknown = gpus[:1] + [types.SimpleNamespace(platform="gpu", device_kind="NVIDIA T4",
                                              process_index=0)]
  assert perf.peak_flops_per_second(unknown, "bfloat16") is None
  # 8 forced host devices share one CPU: its measured matmul rate, once per process.
  cpu = perf.peak_flops_per_second(jax.devices(), "float32")
  assert len(jax.devices()) == 8 and cpu == perf.cpu_peak_flops_per_second()
  assert 1e8 < cpu < 1e14


def test_flops_of_a_matmul_sharded_or_not_are_the_whole_programs():
  m, k, n = 64, 32, 16
  a, b = jnp.ones((m, k)), jnp.ones((k, n))
  single = perf.lowered_flops(jax.jit(lambda x, y: x @ y).lower(a, b))
  mesh = sharding.make_mesh()
  sharded = perf.lowered_flops(jax.jit(lambda x, y: x @ y).lower(
      jax.device_put(a, sharding.batch_sharding(mesh)), jax.device_put(b, sharding.replicated(mesh))))
  assert single == sharded == pytest.approx(2 * m * k * n, rel=1e-3)


def test_utilization():
  assert perf.utilization(1e9, 10, 2.0, 1e11) == {"model_flops_per_second": 5e9, "mfu": 0.05}
  assert perf.utilization(1e9, 10, 2.0, None) == {"model_flops_per_second": 5e9}
  assert perf.utilization(None, 10, 2.0, 1e11) == {}


def _lowered_step_flops(config):
  """XLA's count for the tiny config's step, lowered as the trainer counts it."""
  config = typed(config)
  with backends.xla_convolutions():
    *_, state, step = state_and_step(config)
    batch = {"image": np.zeros((config.global_batch_size, 28, 28, 1), np.uint8)}
    rng = jax.random.key_data(jax.random.key(config.seed))
    return perf.lowered_flops(step.lower(state, batch, rng))


def test_trainer_logs_model_flops_mfu_and_goodput(fake_fmnist, tmp_path):
  config = tiny_config(*fake_fmnist, total_steps=6, log_every_steps=3, checkpoint_every_steps=100)
  train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in records] == [3, 6]
  flops = _lowered_step_flops(config)
  assert flops > 0 and records[0]["model_flops_per_step"] == flops
  assert "model_flops_per_step" not in records[1]  # counted once, with compile_seconds
  peak = perf.peak_flops_per_second(jax.devices(), typed(config).model.dtype)
  for r in records:
    # 3 steps' FLOPs over the interval's seconds, against this process's CPU peak.
    seconds = 3 * config.global_batch_size / r["images_per_second"]
    assert r["model_flops_per_second"] == pytest.approx(3 * flops / seconds, rel=1e-6)
    assert r["mfu"] == pytest.approx(r["model_flops_per_second"] / peak, rel=1e-9)
    assert 0 < r["mfu"] <= 1
    assert 0 < r["goodput"] <= 1 and 0 <= r["data_wait_fraction"] < 1


def test_gradient_accumulation_counts_the_flops_of_the_whole_batch(fake_fmnist, tmp_path):
  """The micro-batch loop is counted once by XLA's analysis: the trainer counts the step
  without accumulation instead (the same model arithmetic)."""
  config = tiny_config(*fake_fmnist, total_steps=1, grad_accum_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  (record,) = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert record["model_flops_per_step"] == _lowered_step_flops(
      tiny_config(*fake_fmnist, total_steps=1))
