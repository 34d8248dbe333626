r"""Times the latent-prediction and video train steps on an accelerator; writes their BENCHMARKS.md section.

Issue 28 (I-JEPA and data2vec 2.0, ViT-B/16 on ImageNet) and issue 29 (VideoMAE ViT-B on
16 x 224 x 224 clips at 90% masking, CVRL R3D-50): each benchmark is the trainer's jitted
step (tools/benchmark.py `benchmark_jax`: views on device, forward, backward, optimizer, EMA
and method-state updates) for its experiment file at the paper's per-device batch, in
bfloat16, on a synthetic batch shaped as the trainer's own (ImageNet: the host's views;
Kinetics: one clip of `clips.num_frames` frames per view and the clips' speeds). Each runs
in its own process (its own compile and peak memory), prints one JSON line and rewrites the
section "## Latent prediction and video steps on an accelerator" of `--output` (rows of an
earlier run on the same device kind that this one did not rerun are kept): step time,
images or clips per second, peak memory (the device's `memory_stats()` peak, else XLA's
buffer assignment) and MFU (model FLOPs per step as the trainer counts them / step time /
jax_ssl/perf.py's dense peak for the device kind and dtype; on a CPU the measured matmul
rate), with the device kind and the command.

On the device machine (one H100 or H200; jax with CUDA, flax, optax and orbax are there,
ml_collections is not), from the repository root, with `.whl` carried (`run`'s carry:
[".whl"]; /work/.library/device/README.md says how wheels travel), one command:

  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 || exit; cp BENCHMARKS.md $OUT/ && python3 tools/device_benchmarks.py --output $OUT/BENCHMARKS.md --jsonl $OUT/device_benchmarks.jsonl

where .whl holds ml_collections' wheel (pure Python; made here, once: `python3 -m pip download
--no-deps --only-binary=:all: -d .whl ml_collections==1.1.0`; it needs absl-py and PyYAML,
both there). Then copy the section of $OUT/BENCHMARKS.md into BENCHMARKS.md. Steps: each
benchmark's `steps` below, after 10 untimed ones (a guess of 5-7 minutes in all with the
compiles on an H100, not measured); `--steps N` sets every one; `--only
ijepa_vit_b16,cvrl_r3d50` runs some (the section keeps the other rows of the same device
kind); the section is rewritten after each benchmark, so a run cut off keeps what finished.

On a CPU, in seconds (the same code path; each experiment's `:runlocal` model, 2 examples
per device, 2 timed steps):

  python tools/device_benchmarks.py --tiny --output /tmp/BENCHMARKS.md [--in-process] [--set KEY=VALUE]

`--set KEY=VALUE` (repeatable) overrides every benchmark's config after its own settings.
Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import subprocess
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)

import markdown_sections  # noqa: E402  (sibling tool: the sections of BENCHMARKS.md)

SECTION = "## Latent prediction and video steps on an accelerator"
_ROWS_TAG = "device_benchmarks rows"  # the rows as JSON, in an HTML comment of the section
TINY_PER_DEVICE_BATCH = 2
TINY_STEPS = 2


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One benchmark: `config` (an experiment file) at `per_device_batch` examples per device
  (the global batch is that times the device count), `settings` ("KEY=VALUE") applied after
  the file's own, `steps` timed steps by default; `source`: where the per-device batch
  comes from."""
  name: str
  issue: int
  config: str
  per_device_batch: int
  steps: int
  source: str
  settings: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("ijepa_vit_b16", 28, "experiments/imagenet/ijepa_vit_base.py", 128, 300,
              "facebookresearch/ijepa in1k_vith14_ep300.yaml: 128 per GPU x 16 GPUs"),
    Benchmark("data2vec2_vit_b16", 28, "experiments/imagenet/data2vec2_vit_base.py", 16, 300,
              "fairseq base_images_only_task.yaml: 16 images (x 16 masks) per GPU x 16 GPUs"),
    Benchmark("videomae_vit_b", 29, "experiments/kinetics400/videomae_vit_base.py", 32, 150,
              "VideoMAE pretrain.sh: 32 clips per GPU x 64 GPUs"),
    # The reference yaml gives the global batch (1024) and bfloat16 only; 16 per device is
    # 1024 over 64 TPU cores, an assumption.
    Benchmark("cvrl_r3d50", 29, "experiments/kinetics400/cvrl_r3d50.py", 16, 100,
              "tensorflow/models cvrl_pretrain_k600_200ep.yaml: 1024 global, bfloat16; 16 per "
              "device assumes 64 TPU cores", ("model.dtype=bfloat16",)),
)
BY_NAME = {b.name: b for b in BENCHMARKS}


def settings_for(bench: Benchmark, *, tiny: bool, device_count: int,
                 extra: tuple[str, ...] = ()) -> tuple[str, tuple[str, ...]]:
  """(config path, settings) of `bench`: the paper's per-device batch times `device_count`
  (with `tiny`: the `:runlocal` model and TINY_PER_DEVICE_BATCH), then `extra` (--set)."""
  path = os.path.join(ROOT, bench.config) + (":runlocal" if tiny else "")
  per_device = TINY_PER_DEVICE_BATCH if tiny else bench.per_device_batch
  return path, (*bench.settings, f"global_batch_size={per_device * device_count}", *extra)


def run_one(bench: Benchmark, *, tiny: bool, steps: int, warmup: int,
            extra: tuple[str, ...] = (), num_devices: int | None = None) -> dict:
  """Runs `bench` in this process (tools/benchmark.py `benchmark_jax`, the trainer's step
  only, on the trainer's batch layout) -> its row."""
  import jax  # pylint: disable=g-import-not-at-top
  import benchmark  # pylint: disable=g-import-not-at-top
  from jax_ssl import config as config_lib  # pylint: disable=g-import-not-at-top
  device_count = num_devices or jax.device_count()
  path, settings = settings_for(bench, tiny=tiny, device_count=device_count, extra=extra)
  config = benchmark.load_config(path, settings)
  layout = benchmark.input_layout(config)
  in_channels = benchmark.in_channels_of(config)
  image_size = (benchmark.default_frame_size(config) if layout == "clips" else
                config.dataset.image_size or config.augment.output_size)
  views = len(config_lib.view_configs(config))
  results, _ = benchmark.benchmark_jax(config, steps, in_channels, image_size,
                                       model_step=False, warmup=warmup, layout=layout,
                                       xla_flops=False, num_devices=device_count)
  device = jax.devices()[0]
  row = {
      "name": bench.name, "issue": bench.issue,
      "config": bench.config + (":runlocal" if tiny else ""),
      "settings": list(settings), "device_kind": device.device_kind,
      "platform": device.platform, "device_count": device_count,
      "jax_version": jax.__version__, "dtype": config.model.dtype,
      "backbone": config.model.backbone, "global_batch_size": config.global_batch_size,
      "per_device_batch": config.global_batch_size // device_count,
      "batch_source": bench.source, "views_per_example": views,
      "unit": "clips" if layout == "clips" else "images",
      "num_frames": config.clips.num_frames if layout == "clips" else None,
      "view_size": config.augment.output_size,
      "frame_size": image_size if layout == "clips" else None,
      **results,
  }
  row["examples_per_s"] = config.global_batch_size / row["trainer_step_s"]
  row["views_per_s"] = row["examples_per_s"] * views
  return row


def _worker_command(bench: Benchmark, args) -> list[str]:
  command = [sys.executable, os.path.abspath(__file__), "--worker", bench.name,
             "--warmup", str(args.warmup)]
  if args.steps:
    command += ["--steps", str(args.steps)]
  if args.tiny:
    command.append("--tiny")
  if args.devices:
    command += ["--devices", str(args.devices)]
  for item in args.set:
    command += ["--set", item]
  return command


def run_isolated(bench: Benchmark, args) -> dict:
  """`run_one` in a fresh process (its own compile, its own device peak memory)."""
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      p for p in (os.environ.get("PYTHONPATH"), ROOT) if p)}
  proc = subprocess.run(_worker_command(bench, args), cwd=ROOT, env=env, text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
  if proc.returncode == 0 and lines:
    return json.loads(lines[-1])
  tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
  return {"name": bench.name, "issue": bench.issue, "config": bench.config, "error": tail[:300]}


# ----------------------------------------------------------------------------------------
# The section.

def _num(value, digits: int) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "n/a"
  return f"{value:,.{digits}f}"


def _sig(value) -> str:
  """Four significant digits ("n/a" for None or a non-finite value)."""
  if value is None or not math.isfinite(value):
    return "n/a"
  return f"{value:.4g}"


def _row_line(r: dict) -> str:
  if "error" in r:
    return (f"| {r['name']} | {r.get('issue', '')} | `{r['config']}` "
            f"| failed: {r['error'][:200]} |" + " |" * 10)
  inputs = (f"{r['views_per_example']} x {r['num_frames']}x{r['view_size']}x{r['view_size']} clip"
            if r["unit"] == "clips" else f"{r['views_per_example']} x {r['view_size']} px view")
  throughput = (f"{_num(r['views_per_s'], 1)} clips/s ({_num(r['examples_per_s'], 1)} videos/s)"
                if r["unit"] == "clips" else f"{_num(r['examples_per_s'], 1)} images/s")
  flops = r.get("model_flops")
  rate = r.get("model_flops_per_second")
  mfu = r.get("mfu")
  peak = r.get("peak_memory_bytes")
  source = {"memory_stats": "device", "memory_analysis": "XLA"}.get(
      r.get("peak_memory_source"), "n/a")
  return (f"| {r['name']} | {r['issue']} | `{r['config']}` | {r['backbone']}, {r['dtype']} "
          f"| {r['per_device_batch']} x {r['device_count']} | {inputs} | {r['timed_steps']} "
          f"| {_num(r['trainer_step_s'], 4)} | {throughput} | {_num(r['trainer_compile_s'], 1)} "
          f"| {_sig(flops and flops / 1e12)} | {_sig(rate and rate / 1e12)} "
          f"| {_sig(mfu and 100 * mfu)} | {_sig(peak and peak / 2**30)} ({source}) |")


def render_section(rows: list[dict]) -> str:
  """The section's markdown: what was measured, the device, the commands that made the rows
  and one table row per benchmark; the rows again as JSON in a comment (what a later
  `--only` run merges)."""
  commands = list(dict.fromkeys(r["command"] for r in rows if r.get("command")))
  ok = [r for r in rows if "error" not in r]
  where = ("each benchmark in its own process" if all(r.get("isolated") for r in rows) else
           "some benchmarks in one process (`--in-process`: the device's peak memory is the "
           "process's so far)")
  first = ok[0] if ok else (rows[0] if rows else {})
  lines = [
      SECTION, "",
      "Generated by `tools/device_benchmarks.py` (never typed by hand; issues 28 and 29). The "
      "trainer's jitted step (views on device, forward, backward, optimizer, EMA and method "
      "state) on synthetic batches shaped as the trainer's (ImageNet: the host's views; "
      f"Kinetics: one clip per view and its speed), {where}, timed back to back after "
      "untimed warm-up steps. MFU: the model FLOPs of a step as the "
      "trainer counts them (`jax_ssl/perf.py` step_flops) / step time / the device's dense "
      "peak for the model's dtype (`perf.PEAK_FLOPS`; on a CPU the measured matmul rate). "
      "Peak memory: the device's `memory_stats()` peak after the timed steps (device), else "
      "XLA's buffer assignment of the step (XLA).",
      "",
      f"- Device: `{first.get('device_kind', 'n/a')}` ({first.get('platform', 'n/a')}) x "
      f"{first.get('device_count', 'n/a')}, jax {first.get('jax_version', 'n/a')}, "
      f"{datetime.date.today().isoformat()}",
      *[f"- Command: `{c}`" for c in commands],
      "",
      "| benchmark | issue | config | model | batch per device x devices | input per example "
      "| timed steps | step s | throughput | compile s | model TFLOP/step | TFLOP/s | MFU % "
      "| peak memory GiB |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      *[_row_line(r) for r in rows],
      "",
      f"<!-- {_ROWS_TAG}: {json.dumps(rows)} -->",
  ]
  return "\n".join(lines) + "\n"


def _split(text: str) -> tuple[str, str, str]:
  """(before, the section, after) of a markdown text ("" where absent)."""
  preamble, blocks = markdown_sections.split(text)
  index = next((i for i, (heading, _) in enumerate(blocks) if heading == SECTION), None)
  if index is None:
    return text, "", ""
  return (preamble + "".join(b for _, b in blocks[:index]), blocks[index][1],
          "".join(b for _, b in blocks[index + 1:]))


def previous_rows(section: str) -> list[dict]:
  """The rows a section's JSON comment holds ([] without one)."""
  match = re.search(rf"<!-- {_ROWS_TAG}: (.*) -->", section)
  return json.loads(match.group(1)) if match else []


def write_section(path: str, rows: list[dict]) -> None:
  """Writes `rows` into the section of the markdown file `path` (made if missing; the
  section appended if absent, else replaced; every other section kept as it is, the file
  replaced atomically: tools/markdown_sections.py). Rows of the previous section measured
  on the same device kind and not in `rows` are kept, in the BENCHMARKS order."""
  old_rows = previous_rows(markdown_sections.section(markdown_sections.read(path), SECTION))
  kinds = {r.get("device_kind") for r in rows if "error" not in r}
  names = {r["name"] for r in rows}
  kept = [r for r in old_rows if r["name"] not in names and "error" not in r
          and (not kinds or r.get("device_kind") in kinds)]
  order = {b.name: i for i, b in enumerate(BENCHMARKS)}
  merged = sorted(kept + rows, key=lambda r: order.get(r["name"], len(order)))
  markdown_sections.write_sections(path, [(SECTION, render_section(merged))],
                                   preamble="# Benchmarks\n")


def main(argv: list[str] | None = None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"),
                      help="the markdown file whose section is written")
  parser.add_argument("--jsonl", help="also append each row's JSON line to this file")
  parser.add_argument("--only", default="", help=f"comma-separated names of {sorted(BY_NAME)}")
  parser.add_argument("--steps", type=int, default=0,
                      help="timed steps of every benchmark (0: each one's own; --tiny: 2)")
  parser.add_argument("--warmup", type=int, default=None,
                      help="untimed steps after the compile (default 10; --tiny: 1)")
  parser.add_argument("--tiny", action="store_true",
                      help="each experiment's :runlocal model, 2 examples per device: seconds "
                           "on a CPU, the same code path")
  parser.add_argument("--devices", type=int, default=0, help="devices to use (0: all)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override for every benchmark (repeatable)")
  parser.add_argument("--in-process", action="store_true",
                      help="run every benchmark in this process (the device's peak memory is "
                           "then the process's so far)")
  parser.add_argument("--worker", help=argparse.SUPPRESS)  # one benchmark, one JSON line
  args = parser.parse_args(argv)
  if args.tiny and not args.steps:
    args.steps = TINY_STEPS
  if args.warmup is None:
    args.warmup = 1 if args.tiny else 10
  only = [n for n in args.only.split(",") if n]
  unknown = [n for n in only + ([args.worker] if args.worker else []) if n not in BY_NAME]
  if unknown:
    parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BY_NAME)}")

  if args.worker or args.in_process:
    from jax_ssl import backends  # pylint: disable=g-import-not-at-top
    backends.prepare_process("auto")  # before JAX starts, as the trainer's main
  if args.worker:
    bench = BY_NAME[args.worker]
    row = run_one(bench, tiny=args.tiny, steps=args.steps or bench.steps, warmup=args.warmup,
                  extra=tuple(args.set), num_devices=args.devices or None)
    print(json.dumps(row), flush=True)
    return [row]

  command = "python tools/device_benchmarks.py " + " ".join(
      shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
  rows = []
  for bench in BENCHMARKS:
    if only and bench.name not in only:
      continue
    print(f"benchmarking {bench.name} ({bench.config})", file=sys.stderr, flush=True)
    if args.in_process:
      try:
        row = run_one(bench, tiny=args.tiny, steps=args.steps or bench.steps,
                      warmup=args.warmup, extra=tuple(args.set), num_devices=args.devices or None)
      except Exception as e:  # pylint: disable=broad-except  # a row that says why
        traceback.print_exc()
        first_line = (str(e).strip().splitlines() or [""])[0]
        row = {"name": bench.name, "issue": bench.issue, "config": bench.config,
               "error": f"{type(e).__name__}: {first_line}"[:300]}
    else:
      row = run_isolated(bench, args)
    row["command"], row["isolated"] = command, not args.in_process
    print(json.dumps(row), flush=True)
    if args.jsonl:
      with open(args.jsonl, "a") as f:
        f.write(json.dumps(row) + "\n")
    rows.append(row)
    write_section(args.output, rows)  # after each: a cut-off run keeps its rows
  print(f"wrote {SECTION!r} of {args.output}", file=sys.stderr)
  return rows


if __name__ == "__main__":
  main()
