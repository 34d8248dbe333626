"""A workdir and a data_dir in Google Cloud Storage, for real: a local GCS emulator
(gcp-storage-emulator, in memory on 127.0.0.1) that the trainer's and the evaluation's
subprocesses reach through their own clients: gcsfs (etils.epath: config, metrics,
TensorBoard, results, the lock), TensorStore (Orbax's arrays) and array_record (the dataset's
records). Train, SIGKILL, resume exactly, evaluate, export the backbone and load it back;
nothing lands in a local `./gs:/` folder.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import trainer_subprocess as ts

pytest.importorskip("gcsfs")
pytest.importorskip("gcp_storage_emulator")

BUCKET = "test-bucket"
WORKDIR = f"gs://{BUCKET}/run"
DATA_DIR = f"gs://{BUCKET}/tfds"
TOTAL_STEPS = 6


# The emulator, with the one header it lacks: real GCS sends an object's generation with every
# download (`x-goog-generation`), and TensorStore's OCDBT (Orbax's default format) reads it
# ("Malformed StorageGeneration" without it). Patched before the server module imports the
# handler into its routes.
_EMULATOR = """
import sys
from gcp_storage_emulator.handlers import objects

_download = objects.download

def download(request, response, storage, *args, **kwargs):
  _download(request, response, storage, *args, **kwargs)
  if response.status.value in (200, 206):
    obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    response["x-goog-generation"] = obj["generation"]
    response["x-goog-metageneration"] = obj["metageneration"]

objects.download = download
from gcp_storage_emulator.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
  """(URL of a fresh in-memory emulator holding the empty bucket, the environment that points
  every client at it). Stopped at the end of the module."""
  port = _free_port()
  proc = subprocess.Popen(
      [sys.executable, "-c", _EMULATOR, "start", "--host=127.0.0.1", f"--port={port}",
       "--in-memory", f"--default-bucket={BUCKET}", "--quiet"],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  url = f"http://127.0.0.1:{port}"
  env = {
      "STORAGE_EMULATOR_HOST": url,            # gcsfs (etils.epath) and google-cloud-storage
      "TENSORSTORE_GCS_HTTP_URL": url,         # Orbax's arrays (TensorStore's gcs driver)
      "CLOUD_STORAGE_EMULATOR_ENDPOINT": url,  # array_record's reader (google-cloud-cpp)
      # No credentials and no GCE metadata server lookups (each would wait for a timeout):
      "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # TensorStore: a fixed token
      "NO_GCE_CHECK": "true",                       # google-auth and gcsfs
      "CLOUDSDK_CONFIG": str(tmp_path_factory.mktemp("no_gcloud_config")),
      "GOOGLE_APPLICATION_CREDENTIALS": "",
      # gcsfs asks the storage-control API (gRPC, not emulated) for the bucket's layout.
      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
  }
  try:
    deadline = time.monotonic() + 30
    while True:
      try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        break
      except OSError:
        if time.monotonic() > deadline or proc.poll() is not None:
          raise RuntimeError("the GCS emulator did not start")
        time.sleep(0.05)
    yield url, env
  finally:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def bucket(emulator):
  """A gcsfs client of the emulator for the test's own reads (anonymous, no env needed; the
  plain client: gcsfs's default one first asks a gRPC API the emulator does not serve)."""
  from gcsfs import core  # pylint: disable=g-import-not-at-top
  return core.GCSFileSystem(endpoint_url=emulator[0], token="anon", skip_instance_cache=True,
                            use_listings_cache=False)


def _upload(bucket, local_dir: str, prefix: str) -> None:
  for folder, _, files in os.walk(local_dir):
    for name in files:
      path = os.path.join(folder, name)
      bucket.put_file(path, f"{prefix}/{os.path.relpath(path, local_dir)}")


def _run(args, env, **kwargs):
  return ts.run(args, devices=1, extra_env=env, **kwargs)


def test_train_sigkill_resume_and_evaluate_in_a_bucket(fake_fmnist, tmp_path, emulator, bucket):
  _, env = emulator
  source_dir, local_data_dir = fake_fmnist
  _upload(bucket, local_data_dir, DATA_DIR[len("gs://"):])  # the dataset, read from the bucket
  overrides = dict(total_steps=TOTAL_STEPS, checkpoint_every_steps=3,
                   **{"eval.train_limit": 64, "eval.test_limit": 32})
  # The reference: the same run, uninterrupted, in a local workdir from the local dataset.
  reference = tmp_path / "reference"
  _run(ts.trainer_args(reference, source_dir, local_data_dir, **overrides), env)

  args = ts.trainer_args(WORKDIR, source_dir, DATA_DIR, **overrides)
  killed = _run(args, env, harness_flags=["--kill_at_step=4", "--kill_signal=KILL"], check=False)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  run = f"{BUCKET}/run"
  assert bucket.exists(f"{run}/checkpoints/3") and not bucket.exists(f"{run}/checkpoints/6")
  assert bucket.exists(f"{run}/train.lock")  # a SIGKILL leaves it

  resumed = _run(args, env)
  lines = resumed.stdout.splitlines()
  assert any(re.fullmatch(rf"warning: took over the stale lock {WORKDIR}/train\.lock \(pid \d+ "
                          rf"on this host .*; that process is gone\)", line) for line in lines), lines
  assert f"resumed from step 3 of {TOTAL_STEPS} ({WORKDIR}/checkpoints/3)" in lines
  assert lines[-1].startswith(f"done: checkpoint {WORKDIR}/checkpoints/{TOTAL_STEPS} ")
  assert not bucket.exists(f"{run}/train.lock")

  # Exact resume: every step's loss as in the uninterrupted run (metrics.jsonl in the bucket).
  records = [json.loads(line) for line in bucket.cat_file(f"{run}/metrics.jsonl").decode().splitlines()]
  got = {r["step"]: r["loss"] for r in records}
  expected = ts.losses(reference)
  assert [r["step"] for r in records] == list(range(1, TOTAL_STEPS + 1)) == sorted(expected)
  for step in expected:
    assert got[step] == pytest.approx(expected[step], rel=1e-6), f"step {step}"
  config = json.loads(bucket.cat_file(f"{run}/config.json"))
  assert config["dataset"]["data_dir"] == DATA_DIR  # URLs are kept as they are
  history = bucket.cat_file(f"{run}/config_history.jsonl").decode().splitlines()
  assert [json.loads(row)["start_step"] for row in history] == [0]
  (events,) = bucket.glob(f"{run}/tensorboard/events.out.tfevents.*")[-1:]
  assert b"loss" in bucket.cat_file(events)  # TensorBoard's scalars, written through epath

  evaluated = subprocess.run(
      [sys.executable, "-m", "jax_ssl.evaluate", "--workdir", WORKDIR, "--protocols", "knn",
       "--noreport"],
      env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ts.ROOT,
           "JAX_COMPILATION_CACHE_DIR": ts.compilation_cache(), **env},
      capture_output=True, text=True, timeout=300)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  results = json.loads(bucket.cat_file(f"{run}/results.json"))
  assert results["steps"] == TOTAL_STEPS and 0 <= results["knn_top1"] <= 1
  assert results["eval_examples"] == {"train": [64, 512], "test": [32, 128]}

  # The backbone exported into the bucket and loaded from it (gcsfs through etils.epath):
  # the same arrays as an export of the same checkpoint to a local file, the same features.
  env_all = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ts.ROOT, **env}
  exported = f"{BUCKET}/export/backbone.safetensors"
  local = tmp_path / "backbone.safetensors"
  for out in (f"gs://{exported}", str(local)):
    done = subprocess.run([sys.executable, "-m", "jax_ssl.export", "--workdir", WORKDIR,
                           "--out", out], env=env_all, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
  from safetensors.numpy import load  # pylint: disable=g-import-not-at-top
  remote_arrays, local_arrays = load(bucket.cat_file(exported)), load(local.read_bytes())
  assert sorted(remote_arrays) == sorted(local_arrays) and remote_arrays
  for name, array in local_arrays.items():
    np.testing.assert_array_equal(remote_arrays[name], array, err_msg=name)
  assert json.loads(bucket.cat_file(exported + ".json"))["step"] == TOTAL_STEPS
  loaded = subprocess.run(
      [sys.executable, "-c", "import sys, numpy as np, jax_ssl\n"
       "x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)\n"
       "a, b = (np.asarray(jax_ssl.load_backbone(p)(x)) for p in sys.argv[1:])\n"
       "assert a.shape[0] == 4 and np.array_equal(a, b), (a, b)\n",
       f"gs://{exported}", str(local)], env=env_all, capture_output=True, text=True, timeout=300)
  assert loaded.returncode == 0, loaded.stderr[-3000:]
  # Nothing was written to a local folder named after the URL (os.path.abspath("gs://...")).
  assert not os.path.exists(os.path.join(os.getcwd(), "gs:"))


def test_a_bucket_path_without_its_client_is_one_line_naming_the_extra(monkeypatch, capsys):
  from jax_ssl import compare  # pylint: disable=g-import-not-at-top
  from jax_ssl.config import paths  # pylint: disable=g-import-not-at-top
  from jax_ssl.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, "gcsfs", None)  # `import gcsfs` raises ImportError
  with pytest.raises(ConfigError) as info:
    paths.absolute_path(WORKDIR)
  assert str(info.value) == (f"--workdir {WORKDIR} needs the Google Cloud Storage client: "
                             f"pip install 'jax_ssl[gcs]'")
  with pytest.raises(ConfigError) as info:
    paths.with_absolute_paths(tiny_config("idx", DATA_DIR))
  assert str(info.value) == (f"--config.dataset.data_dir {DATA_DIR} needs the Google Cloud "
                             f"Storage client: pip install 'jax_ssl[gcs]'")
  with pytest.raises(SystemExit) as info:
    compare.main([WORKDIR])
  assert str(info.value) == (f"error: run {WORKDIR} needs the Google Cloud Storage client: "
                             f"pip install 'jax_ssl[gcs]'")
  # Local paths and unsupported schemes.
  assert paths.absolute_path("runs/a") == os.path.join(os.getcwd(), "runs/a")
  with pytest.raises(ConfigError, match=r"^--workdir ftp://host/run: ftp:// is not supported"):
    paths.absolute_path("ftp://host/run")
