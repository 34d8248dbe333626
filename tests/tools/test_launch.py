"""The launchers of docs/launch.md: tools/launch_tpu.sh and tools/slurm_train.sbatch.

The TPU launcher is run as a user runs it: its --dry-run output is parsed as a shell parses it
(the local shell, then the remote one for the --command) and must hold the install and train
commands on --worker=all; run for real against a fake `gcloud` that runs the train command
with bash, the trainer must receive the overrides exactly as typed (quotes, spaces, `$`).
The SLURM script runs under fake SLURM variables with a `srun` that starts its tasks on this
machine: its time-limit signal must reach the trainers and requeue the job, and with the
real trainer (2 processes x 2 CPU devices on 127.0.0.1) both processes start from the
environment alone and log the losses of a 1-process run.
"""

import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time

import pytest

import trainer_subprocess as ts

ROOT = ts.ROOT
LAUNCH_TPU = os.path.join(ROOT, "tools", "launch_tpu.sh")
SLURM_SCRIPT = os.path.join(ROOT, "tools", "slurm_train.sbatch")
EXPERIMENT = "experiments/imagenet/simclr_resnet50.py"
# Overrides a shell would split or expand if the launcher quoted them wrongly.
TRICKY = ["--config.augment.view_overrides=({'solarize_prob': 0.2}, {\"blur_prob\": 0.1})",
          "--config.dataset.data_dir=gs://bucket/tfds dir/$HOME;echo no",
          "--config.total_steps=10"]
REQUIRED = {"--tpu": "v4-32-a", "--zone": "us-central2-b", "--project": "my-project",
            "--config": EXPERIMENT, "--workdir": "gs://bucket/runs/simclr in1k"}


def _launch_tpu(*args, env=None):
  return subprocess.run(["bash", LAUNCH_TPU, *args], capture_output=True, text=True, timeout=60,
                        env={**os.environ, **(env or {})})


def _required_args(**replace):
  args = []
  for flag, value in {**REQUIRED, **replace}.items():
    if value is not None:
      args += [flag, value]
  return args


def _write_executable(path, text):
  with open(path, "w") as f:
    f.write(text)
  os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def test_scripts_parse():
  for script in (LAUNCH_TPU, SLURM_SCRIPT):
    proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_tpu_dry_run_prints_install_and_train_on_all_workers(tmp_path):
  proc = _launch_tpu(*_required_args(), *TRICKY, "--dry-run", "--", "--allow_config_changes",
                     env={"TMPDIR": str(tmp_path)})
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == ""  # a gs:// workdir: no warning
  commands = [shlex.split(line) for line in proc.stdout.splitlines()]  # as the local shell
  assert [c[:5] for c in commands] == [
      ["tar", "-czf", f"{tmp_path}/jax_ssl_src_v4-32-a.tar.gz", "--exclude=__pycache__", "-C"],
      ["gcloud", "compute", "tpus", "tpu-vm", "scp"],
      ["gcloud", "compute", "tpus", "tpu-vm", "ssh"],
      ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
  assert commands[0][5:] == [ROOT, "pyproject.toml", "README.md", "LICENSE", "jax_ssl", "experiments"]
  where = ["--zone=us-central2-b", "--project=my-project", "--worker=all"]
  assert commands[1][5:] == [f"{tmp_path}/jax_ssl_src_v4-32-a.tar.gz",
                             "v4-32-a:jax_ssl_src.tar.gz", *where]
  for command in commands[2:]:
    assert command[5:9] == ["v4-32-a", *where] and command[9] == "--command"
    assert len(command) == 11
  install = shlex.split(commands[2][10])  # as the worker's shell
  assert "tar -xzf $HOME/jax_ssl_src.tar.gz -C $HOME/jax_ssl" in commands[2][10]
  assert install[-4:] == ["install", "-q", "jax[tpu]", "$HOME/jax_ssl[all,gcs]"]
  train = shlex.split(commands[3][10])
  assert train == ["cd", "$HOME/jax_ssl", "&&", "$HOME/jax_ssl_venv/bin/python", "-m",
                   "jax_ssl.train", "--config", EXPERIMENT, "--workdir", REQUIRED["--workdir"],
                   *TRICKY, "--allow_config_changes"]


def test_tpu_no_install_detach_and_local_workdir_warning():
  proc = _launch_tpu(*_required_args(**{"--workdir": "runs/x"}), "--dry-run", "--no-install",
                     "--detach")
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr.startswith("warning: --workdir runs/x is not a gs:// bucket")
  [line] = proc.stdout.splitlines()  # the train command only
  train = shlex.split(shlex.split(line)[10])
  assert train[3:6] == ["nohup", "$HOME/jax_ssl_venv/bin/python", "-m"]
  assert train[-7:] == ["runs/x", ">", "$HOME/jax_ssl_train.log", "2>&1", "<", "/dev/null", "&"]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_tpu_refuses_a_missing_flag_in_one_line(missing):
  proc = _launch_tpu(*_required_args(**{missing: None}), "--dry-run")
  assert proc.returncode == 2 and proc.stdout == ""
  assert len(proc.stderr.splitlines()) == 1
  assert proc.stderr.startswith(f"error: {missing} is missing: ")


def test_tpu_refuses_an_unknown_experiment_and_flag():
  proc = _launch_tpu(*_required_args(**{"--config": "experiments/imagenet/simclr.py"}), "--dry-run")
  assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
  assert proc.stderr.startswith("error: --config experiments/imagenet/simclr.py: no experiment file")
  proc = _launch_tpu(*_required_args(), "--worker=all", "--dry-run")
  assert proc.returncode == 2 and proc.stderr.startswith("error: unknown argument '--worker=all'")


def test_tpu_commands_run_through_two_shells(tmp_path):
  """Without --dry-run, against a `gcloud` that records its calls and runs the train command
  with bash (as the worker's shell would) in a fake home: the archive holds the package and
  the trainer gets every override unchanged."""
  home, bin_dir = tmp_path / "home", tmp_path / "bin"
  (home / "jax_ssl_venv" / "bin").mkdir(parents=True)
  (home / "jax_ssl").mkdir()
  bin_dir.mkdir()
  _write_executable(home / "jax_ssl_venv" / "bin" / "python", f"""#!{sys.executable}
import json, os, sys
json.dump({{"cwd": os.getcwd(), "argv": sys.argv[1:]}}, open(os.path.join(os.environ["HOME"], "trainer.json"), "w"))
""")
  _write_executable(bin_dir / "gcloud", f"""#!{sys.executable}
import json, os, subprocess, sys
with open(os.path.join(os.environ["HOME"], "gcloud_calls.jsonl"), "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\\n")
command = sys.argv[sys.argv.index("--command") + 1] if "--command" in sys.argv else ""
if "jax_ssl.train" in command:
  sys.exit(subprocess.run(["bash", "-c", command]).returncode)
""")
  env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home), "TMPDIR": str(tmp_path)}
  proc = _launch_tpu(*_required_args(), *TRICKY, env=env)
  assert proc.returncode == 0, proc.stderr
  calls = [json.loads(line) for line in open(home / "gcloud_calls.jsonl")]
  assert [c[3] for c in calls] == ["scp", "ssh", "ssh"]
  assert all("--worker=all" in c for c in calls)
  with tarfile.open(tmp_path / "jax_ssl_src_v4-32-a.tar.gz") as archive:
    names = set(archive.getnames())
  assert {"pyproject.toml", "LICENSE", "jax_ssl/train.py", EXPERIMENT} <= names
  assert not any("__pycache__" in n for n in names)
  trainer = json.load(open(home / "trainer.json"))
  assert trainer["cwd"] == str(home / "jax_ssl")
  assert trainer["argv"] == ["-m", "jax_ssl.train", "--config", EXPERIMENT,
                             "--workdir", REQUIRED["--workdir"], *TRICKY]


# --- SLURM -----------------------------------------------------------------------------------

# `srun` for one node: starts SLURM_NTASKS copies of the command with the variables srun sets
# per task, writes their pids for the fake `scancel`, returns the highest exit code.
FAKE_SRUN = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
while args[0].startswith("--"):  # srun's own options (--kill-on-bad-exit=1)
  args.pop(0)
tasks = int(os.environ["SLURM_NTASKS"])
procs = [subprocess.Popen(args, env={{**os.environ, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i),
                                     "SLURM_NODEID": "0", "SLURM_STEP_NUM_TASKS": str(tasks),
                                     "SLURM_STEP_NUM_NODES": "1", "SLURM_STEP_TASKS_PER_NODE": str(tasks),
                                     "SLURM_STEP_NODELIST": os.environ["SLURM_JOB_NODELIST"]}})
         for i in range(tasks)]
with open(os.path.join(os.environ["FAKE_SLURM_DIR"], "pids"), "w") as f:
  f.write(" ".join(str(p.pid) for p in procs))
sys.exit(max(p.wait() for p in procs))
"""
FAKE_SCANCEL = """#!/bin/bash
echo "scancel $*" >> "$FAKE_SLURM_DIR/calls"
kill -TERM $(cat "$FAKE_SLURM_DIR/pids")
"""
FAKE_SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$FAKE_SLURM_DIR/calls"
"""


def _fake_slurm(tmp_path, tasks, port):
  """PATH with srun/scancel/scontrol stand-ins and the variables of a 1-node job whose
  coordinator port (JAX's SLURM rule: SLURM_JOB_ID % 4096 + 61440) is `port`."""
  bin_dir = tmp_path / "slurm_bin"
  bin_dir.mkdir()
  _write_executable(bin_dir / "srun", FAKE_SRUN.format(python=sys.executable))
  _write_executable(bin_dir / "scancel", FAKE_SCANCEL)
  _write_executable(bin_dir / "scontrol", FAKE_SCONTROL)
  return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(tmp_path),
          "SLURM_JOB_ID": str(4096 * 7 + port - 61440), "JAX_COORDINATOR_PORT": str(port),
          "SLURM_JOB_NODELIST": "127.0.0.1", "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "1",
          "SLURM_NTASKS": str(tasks), "SLURM_NTASKS_PER_NODE": str(tasks)}


def _free_coordinator_port() -> int:
  """A free port in JAX's SLURM range [61440, 65535]."""
  for port in range(61440 + os.getpid() % 4000, 65536):
    with socket.socket() as s:
      try:
        s.bind(("127.0.0.1", port))
      except OSError:
        continue
      return port
  raise RuntimeError("no free port in 61440-65535")


def test_slurm_time_limit_signal_saves_and_requeues(tmp_path):
  """SIGUSR1 to the batch script (--signal=B:USR1@300) -> SIGTERM to every task -> they exit
  0 -> `scontrol requeue JOBID`. The tasks are a stand-in trainer that waits for SIGTERM."""
  trainer = tmp_path / "trainer"
  _write_executable(trainer, """#!/bin/bash
trap 'echo "$SLURM_PROCID saved" >> "$FAKE_SLURM_DIR/stopped"; exit 0' TERM
echo "$SLURM_PROCID $*" >> "$FAKE_SLURM_DIR/started"
while :; do sleep 0.05; done
""")
  env = {**os.environ, **_fake_slurm(tmp_path, tasks=2, port=61440), "PYTHON": str(trainer)}
  batch = subprocess.Popen(["bash", SLURM_SCRIPT, "experiments/fashion_mnist/simclr.py",
                            str(tmp_path / "run"), "--config.total_steps=5"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 30
  while not (tmp_path / "started").exists() or len(open(tmp_path / "started").readlines()) < 2:
    assert time.time() < deadline and batch.poll() is None, batch.communicate()[0]
    time.sleep(0.05)
  batch.send_signal(signal.SIGUSR1)
  output, _ = batch.communicate(timeout=30)
  assert batch.returncode == 0, output
  started = sorted(open(tmp_path / "started").read().splitlines())
  run = tmp_path / "run"
  assert started == [f"{i} -m jax_ssl.train --config experiments/fashion_mnist/simclr.py "
                     f"--workdir {run} --config.total_steps=5" for i in range(2)]
  assert sorted(open(tmp_path / "stopped").read().splitlines()) == ["0 saved", "1 saved"]
  job = env["SLURM_JOB_ID"]
  assert open(tmp_path / "calls").read().splitlines() == [f"scancel --signal=TERM {job}",
                                                          f"scontrol requeue {job}"]


def test_slurm_refuses_missing_arguments_and_a_run_outside_slurm():
  env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
  proc = subprocess.run(["bash", SLURM_SCRIPT, "experiments/fashion_mnist/simclr.py"],
                        capture_output=True, text=True, env={**env, "SLURM_JOB_ID": "7"})
  assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
  assert proc.stderr.startswith("error: give the experiment and the workdir")
  proc = subprocess.run(["bash", SLURM_SCRIPT, "experiments/fashion_mnist/simclr.py", "runs/x"],
                        capture_output=True, text=True, env=env)
  assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
  assert proc.stderr.startswith("error: not inside a SLURM job: submit this script with sbatch")


STEPS = 6


def test_slurm_two_processes_start_from_the_environment(fake_fmnist, tmp_path):
  """The sbatch script under fake SLURM variables: 2 processes x 2 CPU devices on 127.0.0.1,
  no multi-host flags. Both start (their banners), finish, and log the losses of one
  process on 1 device (test_preemption_multihost.py's learning rate and tolerance)."""
  overrides = {"total_steps": STEPS, "checkpoint_every_steps": 100,
               "optimizer.base_learning_rate": 2e-4}
  # The reference runs beside the SLURM job (mostly single-threaded start-up and tracing).
  reference_run = ts.run(ts.trainer_args(tmp_path / "one", *fake_fmnist, **overrides), devices=1,
                         wait=False)

  workdir = tmp_path / "slurm"
  args = ts.trainer_args(workdir, *fake_fmnist, **overrides)  # --config C --workdir W flags...
  port = _free_coordinator_port()
  env = {**os.environ, **_fake_slurm(tmp_path, tasks=2, port=port),
         "PYTHON": sys.executable, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
         "JAX_COMPILATION_CACHE_DIR": ts.compilation_cache(),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
  proc = subprocess.run(["bash", SLURM_SCRIPT, args[1], args[3], *args[4:]], env=env,
                        capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  output = proc.stdout + proc.stderr
  for index in range(2):  # distributed.start_banner, one line per process
    assert re.search(rf"process {index} of 2 \(host .*\): 2 local cpu devices \[\d+-\d+\] "
                     rf"of 4 in all; coordinator 127\.0\.0\.1:{port} \(from SLURM\)", output), output[-3000:]
  assert not os.path.exists(tmp_path / "calls")  # no signal: no scancel, no requeue

  reference_output, _ = reference_run.communicate(timeout=600)
  assert reference_run.returncode == 0, reference_output[-5000:]
  reference = ts.losses(tmp_path / "one")
  losses = ts.losses(workdir)  # each step once: only process 0 wrote
  assert sorted(losses) == sorted(reference) == list(range(1, STEPS + 1))
  for step, loss in reference.items():
    assert losses[step] == pytest.approx(loss, rel=1e-4), step
