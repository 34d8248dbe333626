"""Views stay on the device of their example and the gradients are all-reduced once per step
(issue 25, item 7), read from the compiled HLO of the trainer's step on 8 CPU devices with
`tools/benchmark.py`'s HLO parser; the per-device passes give the step of the global arrays."""

import collections
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl.config import Experiment
from jax_ssl.methods.spec import map_by_crop_size, stack_views, unstack_views
from jax_ssl.models import resnet
from jax_ssl.step import make_train_step

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
import benchmark  # noqa: E402

DINO_ARGS = dict(student_temp=0.1, teacher_temp=0.07, warmup_teacher_temp=0.04,
                 warmup_teacher_temp_steps=4, center_momentum=0.9, freeze_last_layer_steps=0,
                 base_momentum=0.9)
DINO_HEADS = dict(projector_hidden_dim=16, bottleneck_dim=8, num_prototypes=12,
                  projector_num_layers=3, use_bn=True)


def multicrop(method: str) -> Experiment:
  """The tiny main-job config, `method` with 2 global (28 px) + 4 local (12 px) crops; SGD
  without warm-up, so parameters move by the gradient from the first step (typed)."""
  config = tiny_config("unused", "unused")
  config.method = method
  if method == "dino":
    config.method_args = ml_collections.ConfigDict(DINO_ARGS)
    config.heads = ml_collections.ConfigDict(DINO_HEADS)
  config.augment.local_crops.update(num=4, output_size=12)
  config.optimizer.update(name="sgd", warmup_steps=0, momentum=0.9, weight_decay=0.0)
  config = typed(config)
  config_lib.validate(config, 8)
  return config


def test_stack_views_is_example_major_and_unstack_inverts_it():
  views = [jnp.full((3, 2), 10 * v) + jnp.arange(3)[:, None] for v in range(4)]  # V=4, B=3
  stacked = stack_views(views)
  assert stacked.shape == (12, 2)
  for b in range(3):
    for v in range(4):  # row b * V + v is view v of example b
      np.testing.assert_array_equal(stacked[b * 4 + v], views[v][b])
  for got, want in zip(unstack_views(stacked, 4), views):
    np.testing.assert_array_equal(got, want)


def test_map_by_crop_size_gives_each_view_its_own_output_with_batch_statistics_of_its_size():
  # One pass per size, BatchNorm over every view of that size: the old view-major
  # concatenation's outputs, in the same roles (view v of example i).
  model = resnet.make_backbone("resnet_small", width=4, stem="cifar", in_channels=1,
                               rngs=nnx.Rngs(0))
  model.train()
  keys = jax.random.split(jax.random.key(0), 5)
  views = ([jax.random.uniform(keys[i], (6, 16, 16, 1)) for i in range(2)]
           + [jax.random.uniform(keys[i], (6, 8, 8, 1)) for i in range(2, 5)])
  reference = nnx.clone(model)
  got = map_by_crop_size(model, views)
  want = (jnp.split(reference(jnp.concatenate(views[:2])), 2)
          + jnp.split(reference(jnp.concatenate(views[2:])), 3))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
  # The running statistics moved by the same two passes.
  for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.BatchStat)),
                  jax.tree.leaves(nnx.state(reference, nnx.BatchStat))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _compiled_collectives(config):
  step_fn, _, _, _, state, batch, rng, _, _ = benchmark.build_step(config, 1, 28)
  text = step_fn.lower(state, batch, rng).compile().as_text()
  return benchmark.collectives(benchmark.parse_hlo(text)), state


@pytest.mark.parametrize("method", ["simclr", "dino"])
def test_views_are_not_moved_between_devices(method):
  assert jax.device_count() == 8, "conftest sets 8 host CPU devices"
  found, _ = _compiled_collectives(multicrop(method))
  moved = [c for c in found if c["kind"] in ("all-gather", "all-to-all", "collective-permute")]
  images = [c for c in moved if any(len(shape) == 4 for _, shape in c["arrays"])]
  assert not images, [(c["kind"], c["arrays"]) for c in images]  # no NHWC view moves
  if method == "dino":  # its loss needs nothing from other devices but reductions
    assert not moved, [(c["kind"], c["arrays"]) for c in moved]


def test_dino_with_two_crop_sizes_all_reduces_its_gradients_once():
  found, state = _compiled_collectives(multicrop("dino"))
  # Every parameter tensor (kernels: rank >= 2; vectors could be mistaken for BatchNorm
  # statistics) is all-reduced once: twice before, once per crop size.
  kernels = collections.Counter(p.shape for p in jax.tree.leaves(state.params) if p.ndim >= 2)
  reduced = collections.Counter(shape for c in found if c["kind"] == "all-reduce"
                                for _, shape in c["arrays"] if shape in kernels)
  assert reduced == kernels
  all_reduce_bytes = sum(c["bytes"] for c in found if c["kind"] == "all-reduce")
  params_bytes = sum(p.size * 4 for p in jax.tree.leaves(state.params))
  assert params_bytes < all_reduce_bytes < 1.2 * params_bytes  # + BatchNorm statistics


@pytest.mark.parametrize("method", ["simclr", "dino"])
def test_per_device_passes_give_the_step_of_the_global_arrays(method):
  # 8 devices, views' passes in a shard_map (the trainer's step with its mesh) vs the same
  # step jitted on one device: same loss, gradient norm, parameters and BatchNorm statistics.
  config = multicrop(method)
  step_fn, _, _, graphdef, state, batch, rng, spec, optimizer = benchmark.build_step(
      config, 1, 28)
  plain = jax.jit(make_train_step(graphdef, spec, config.method_args, optimizer,
                                  config_lib.build_optimizer(config)[1],
                                  config_lib.view_configs(config),
                                  total_steps=config.total_steps))
  device = jax.devices()[0]
  before = jax.tree.map(np.asarray, state)  # the jitted step donates (deletes) its state
  one = jax.device_put(before, device)
  host_batch, host_rng = jax.device_put(jax.tree.map(np.asarray, (batch, rng)), device)
  eight = state
  for _ in range(2):
    one, metrics_one = plain(one, host_batch, host_rng)
    eight, metrics_eight = step_fn(eight, batch, rng)
  for key in ("loss", "grad_norm"):
    assert float(metrics_one[key]) == pytest.approx(float(metrics_eight[key]), rel=1e-4)
  assert float(metrics_one["grad_norm"]) > 0.1
  moved = 0.0
  for field in ("params", "batch_stats", "target_params", "target_batch_stats"):
    for a, b, start in zip(jax.tree.leaves(getattr(one, field)),
                           jax.tree.leaves(getattr(eight, field)),
                           jax.tree.leaves(getattr(before, field))):
      change_one, change_eight = np.asarray(a) - start, np.asarray(b) - start
      scale = np.abs(change_one).max()
      np.testing.assert_allclose(change_eight, change_one, rtol=0, atol=1e-3 * scale + 1e-8)
      moved = max(moved, scale)
  assert moved > 1e-3  # the steps changed the state


SYNTHETIC_HLO = """HloModule m, entry_computation_layout={()->f32[]}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%body (p: (s32[], bf16[4,8])) -> (s32[], bf16[4,8]) {
  %p = (s32[], bf16[4,8]{1,0}) parameter(0)
  %x = bf16[4,8]{1,0} get-tuple-element(%p), index=1
  %w = bf16[8,8]{1,0} constant({...})
  %d = bf16[4,8]{1,0} dot(%x, %w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %ars = bf16[4,8]{1,0} all-reduce-start(%d), replica_groups={}, to_apply=%add
  %ard = bf16[4,8]{1,0} all-reduce-done(%ars)
  ROOT %t = (s32[], bf16[4,8]{1,0}) tuple(%i, %ard)
}

%cond (p: (s32[], bf16[4,8])) -> pred[] {
  ROOT %c = pred[] constant(true)
}

ENTRY %main () -> f32[] {
  %img = bf16[2,8,8,3]{3,2,1,0} parameter(0)
  %k = bf16[3,3,3,16]{3,2,1,0} parameter(1)
  %conv = (bf16[2,8,8,16]{3,2,1,0}, u8[0]{0}) custom-call(%img, %k), custom_call_target="__cudnn$convForward"
  %f = f32[2,16]{1,0} parameter(2)
  %ag = (f32[2,16]{1,0}, f32[16,16]{1,0}) all-gather-start(%f), dimensions={0}
  %agd = f32[16,16]{1,0} all-gather-done(%ag)
  %cp = (f32[2,16]{1,0}, f32[2,16]{1,0}, u32[], u32[]) collective-permute-start(%f), source_target_pairs={{0,1}}
  %ar = (f32[16]{0}, /*index=1*/f32[3,3]{1,0}) all-reduce(%v, %m), to_apply=%add
  %loop = (s32[], bf16[4,8]{1,0}) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"4"}}
  %e = f32[2,16]{1,0} convolution(%f, %f), dim_labels=b01f_01io->b01f
  ROOT %r = f32[] constant(0)
}
"""


def test_hlo_parser_reads_async_collectives_loops_and_custom_call_convolutions():
  summary = benchmark.hlo_summary(SYNTHETIC_HLO)
  assert summary["collective_bytes"] == {
      "all-reduce": 4 * (16 + 9) + 4 * 2 * 32,  # the tuple, + bf16[4,8] 4 times in the loop
      "all-gather": 4 * 16 * 16,  # the gathered result of the -start pair, once
      "all-to-all": 0, "collective-permute": 4 * 2 * 16, "reduce-scatter": 0}
  assert summary["collective_counts"]["all-reduce"] == 1 + 4
  assert summary["ops_by_dtype"] == {"convolution": {"bf16": 1, "f32": 1}, "dot": {"bf16": 4}}
