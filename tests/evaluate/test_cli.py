"""`python -m jax_ssl.evaluate` on a tiny trained run: re-evaluation reproduces the trainer's
numbers, protocol selection, --step, fine-tuning and low-label results, the report, feature
export, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import trainer_subprocess as ts
from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl.config import saved as saved_lib
from jax_ssl import train
from jax_ssl.data import pipeline
from jax_ssl.errors import UserInputError
from jax_ssl.evaluate import knn
from jax_ssl.evaluate.workdir import evaluate_workdir
from conftest import assert_real_png

_ENV = {**os.environ, "PYTHONPATH": ts.ROOT, "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def evaluated_run(fake_fmnist, tmp_path_factory):
  """A 4-step run (checkpoints at steps 2 and 4) evaluated by the trainer, report included.

  No baselines and one low-label subset, for time: the raw-pixel probes would dominate it
  (baselines: test_train.py's mock CIFAR-10 run; 3 subsets:
  test_protocol_selection_merge_finetune_low_label_and_step and test_protocols.py).
  """
  workdir = tmp_path_factory.mktemp("evaluated_run")
  config = tiny_config(*fake_fmnist, total_steps=4, checkpoint_every_steps=2, evaluate=True)
  config.eval.update(knn_k=10, knn_k_sweep=(1, 20), report=True, low_label_seeds=(0,),
                     baselines=False)
  config.eval.finetune.update(steps=6, batch_size=32, warmup_steps=1)
  train.train_and_evaluate(config, str(workdir))
  return workdir


def _copy(run, tmp_path):
  return shutil.copytree(run, tmp_path / "run")


def test_train_time_report(evaluated_run):
  text = (evaluated_run / "report.md").read_text()
  results = json.load(open(evaluated_run / "results.json"))
  for picture in ("training_curves.png", "embedding.png", "knn_confusion.png"):
    assert f"](report/{picture})" in text
    assert_real_png(evaluated_run / "report" / picture)
  assert f"| {results['knn_top1']:.4f} |" in text.splitlines()[4]  # the encoder's row
  assert "t-SNE of 128 points" in text or "UMAP of 128 points" in text


def test_cli_reevaluation_reproduces_train_time_results(evaluated_run, tmp_path):
  workdir = _copy(evaluated_run, tmp_path)
  first = json.load(open(workdir / "results.json"))
  os.remove(workdir / "results.json")
  saved = json.load(open(workdir / "config.json"))
  saved["eval"]["report"] = False  # the numbers are the point here; the report is tested above
  (workdir / "config.json").write_text(json.dumps(saved))
  proc = subprocess.run([sys.executable, "-m", "jax_ssl.evaluate", "--workdir", str(workdir)],
                        env=_ENV, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  second = json.load(open(workdir / "results.json"))
  assert first.pop("eval_seconds") > 0 and second.pop("eval_seconds") > 0
  assert second == first  # every accuracy, sweep value, per-subset value and penalty
  expected = {"knn_top1", "knn_k1_top1", "knn_k20_top1", "linear_top1", "linear_l2",
              "linear_holdout_top1", "linear_1pct_top1", "linear_1pct_top1_std",
              "linear_1pct_top1_seeds", "linear_1pct_l2", "knn_k"}
  assert expected <= set(first) and len(first["linear_1pct_top1_seeds"]) == 1
  assert "linear_top1" in proc.stdout  # the table is printed


def test_protocol_selection_merge_finetune_low_label_and_step(evaluated_run, tmp_path):
  workdir = _copy(evaluated_run, tmp_path)
  before = json.load(open(workdir / "results.json"))
  saved = json.load(open(workdir / "config.json"))
  saved["eval"]["low_label_seeds"] = [0, 1, 2]
  (workdir / "config.json").write_text(json.dumps(saved))
  results = evaluate_workdir(str(workdir), protocol_names="finetune,lowlabel-10%")
  assert results == json.load(open(workdir / "results.json"))
  # The protocols not rerun keep their values; the new ones are added.
  for key in ("knn_top1", "linear_top1", "linear_1pct_top1"):
    assert results[key] == before[key]
  for prefix in ("linear", "finetune"):
    seeds = results[f"{prefix}_10pct_top1_seeds"]
    assert len(seeds) == 3 and all(0 <= s <= 1 for s in seeds)
    assert results[f"{prefix}_10pct_top1"] == pytest.approx(np.mean(seeds))
    assert results[f"{prefix}_10pct_top1_std"] == pytest.approx(np.std(seeds, ddof=1))
  assert 0 <= results["finetune_top1"] <= 1
  assert results["finetune_layer_decay"] is None
  assert "no layer-wise lr decay (ResNet has no layer_index)" in results["finetune_note"]
  # Another step: a fresh result of that checkpoint only, from its own weights.
  step_two = evaluate_workdir(str(workdir), protocol_names="knn", step=2,
                              export_dir=str(tmp_path / "step2"), splits=("test",))
  assert step_two["steps"] == 2 and "linear_top1" not in step_two and "knn_top1" in step_two
  records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert step_two["train_seconds"] == round(records[1]["train_seconds"], 1)
  evaluate_workdir(str(workdir), export_dir=str(tmp_path / "step4"), splits=("test",))
  assert not np.allclose(np.load(tmp_path / "step2" / "test_features.npy"),
                         np.load(tmp_path / "step4" / "test_features.npy"))


def test_finetune_random_init_baseline_and_low_label_switch(evaluated_run, tmp_path):
  """With baselines, fine-tuning also runs from the random initialisation (what pretraining
  must beat); eval.finetune.low_label=False keeps it off the low-label subsets."""
  workdir = _copy(evaluated_run, tmp_path)
  saved = json.load(open(workdir / "config.json"))
  saved["eval"].update(baselines=True, train_limit=256, test_limit=128)
  saved["eval"]["finetune"]["low_label"] = False
  (workdir / "config.json").write_text(json.dumps(saved))
  results = evaluate_workdir(str(workdir), protocol_names="finetune,lowlabel-10%")
  baseline = results["baselines"]["random_init"]
  assert 0 <= baseline["finetune_top1"] <= 1 and 0 <= results["finetune_top1"] <= 1
  assert "linear_10pct_top1" in baseline and "linear_10pct_top1" in results
  assert not any(key.startswith("finetune_10pct") for key in {**results, **baseline})
  assert "finetune_top1" not in results["baselines"]["raw_pixels"]


def test_export_features_and_report_only(evaluated_run, fake_fmnist, tmp_path, monkeypatch):
  workdir = _copy(evaluated_run, tmp_path)
  shutil.rmtree(workdir / "report")
  os.remove(workdir / "report.md")
  results_before = (workdir / "results.json").read_text()
  out = tmp_path / "features"
  # A relative --workdir (as typed on the command line): Orbax needs absolute paths.
  monkeypatch.chdir(tmp_path)
  evaluate_workdir("run", report=True, export_dir=str(out))
  # Nothing re-evaluated (results.json holds this step), the report rewritten.
  assert (workdir / "results.json").read_text() == results_before
  assert "](report/embedding.png)" in (workdir / "report.md").read_text()
  assert_real_png(workdir / "report" / "knn_confusion.png")
  train_x, train_y = np.load(out / "train_features.npy"), np.load(out / "train_labels.npy")
  test_x, test_y = np.load(out / "test_features.npy"), np.load(out / "test_labels.npy")
  assert train_x.shape == (256, 32) and test_x.shape == (128, 32)  # eval.*_limit; width 4 -> 32
  assert train_x.dtype == np.float32
  # The labels are the split's, in order; the features are the ones the protocols used.
  source = pipeline.load_source("fashion_mnist", "test", data_dir=fake_fmnist[1])
  np.testing.assert_array_equal(test_y, [source[i]["label"] for i in range(128)])
  results = json.loads(results_before)
  assert knn.knn_accuracy(train_x, train_y, test_x, test_y, num_classes=10, k=10) == results[
      "knn_top1"]


def test_bad_input_is_one_line(evaluated_run, tmp_path):
  cases = {
      "protocols": (dict(protocol_names="knn,fintune"),
                    "unknown evaluation protocol 'fintune' in 'knn,fintune'; choose from"),
      "step": (dict(step=3), r"--step 3: no checkpoint of that step in .*\(it has \[2, 4\]\)"),
      "split": (dict(export_dir=str(tmp_path / "x"), splits=("validation",)),
                "unknown split 'validation'; use train, test or train,test"),
  }
  for name, (kwargs, message) in cases.items():
    with pytest.raises(UserInputError, match=message) as info:
      evaluate_workdir(str(evaluated_run), **kwargs)
    assert "\n" not in str(info.value), name
  proc = subprocess.run([sys.executable, "-m", "jax_ssl.evaluate", "--workdir",
                         str(tmp_path / "missing")], env=_ENV, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path}/missing/config.json not found: --workdir must be a directory "
      f"written by jax_ssl.train")


def test_configs_saved_before_the_new_keys_evaluate_and_resume(tmp_path):
  config = typed(tiny_config("unused", "unused"))
  saved = json.loads(json.dumps(config.to_dict()))  # config.json as training writes it
  del saved["online_probe"], saved["model"]["final_features"]
  for key in ("protocols", "knn_k_sweep", "low_label_seeds", "report", "finetune"):
    del saved["eval"][key]
  saved["eval"].update(low_label_fraction=0.01, low_label_seed=0)
  filled = saved_lib.with_saved_defaults(saved)
  assert "low_label_fraction" not in filled["eval"] and "low_label_seed" not in filled["eval"]
  upgraded = config_lib.from_saved(saved)
  # Exactly what such runs evaluated: kNN, linear and the 1% probe on the seed-0 subset.
  assert upgraded.eval.protocols == "knn,linear,lowlabel-1%"
  assert tuple(upgraded.eval.low_label_seeds) == (0,)
  assert upgraded.online_probe is False
  assert upgraded.model.final_features == 0
  config_lib.validate(upgraded, device_count=8)
  # Resuming such a workdir with today's config (online_probe False) is not refused.
  (tmp_path / "config.json").write_text(json.dumps(saved))
  os.makedirs(tmp_path / "checkpoints" / "2")
  config_lib.check_resume_compatible(config, str(tmp_path))
  config = config.replace(online_probe=True)
  with pytest.raises(UserInputError, match=r"another model \(online_probe: False -> True\)"):
    config_lib.check_resume_compatible(config, str(tmp_path))


def test_noreport_overrides_the_runs_eval_report_and_the_cli_is_quiet(evaluated_run, tmp_path):
  workdir = _copy(evaluated_run, tmp_path)
  shutil.rmtree(workdir / "report")
  os.remove(workdir / "report.md")
  assert json.load(open(workdir / "config.json"))["eval"]["report"] is True
  # A relative --workdir, from the folder that holds it.
  proc = subprocess.run([sys.executable, "-m", "jax_ssl.evaluate", "--workdir", "run",
                         "--protocols", "knn", "--noreport"], cwd=tmp_path, env=_ENV,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not os.path.exists(workdir / "report.md") and not os.path.exists(workdir / "report")
  assert "report:" not in proc.stdout
  # No absl INFO lines (Orbax logs every file it reads at INFO): only the results table.
  assert not [line for line in proc.stderr.splitlines() if line.startswith("I")], proc.stderr
  assert proc.stdout.splitlines()[0].startswith("| features | knn_top1 |")
