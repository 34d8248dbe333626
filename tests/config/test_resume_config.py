"""Resuming with another config, extending total_steps, and what a run says at its end."""

import json
import os
import signal
import time

import pytest

from conftest import tiny_config, typed
from jax_ssl import config as config_lib
from jax_ssl import train
from jax_ssl.errors import ConfigError
from jax_ssl.evaluate import run as evaluate_run


def _saved_run(tmp_path, config, step):
  """A workdir as training leaves it: config.json (the typed experiment's values) and a
  checkpoint folder of `step`."""
  (tmp_path / "config.json").write_text(json.dumps(typed(config).to_dict()))
  os.makedirs(tmp_path / "checkpoints" / str(step))


def test_resuming_another_model_names_only_the_changed_keys(tmp_path):
  _saved_run(tmp_path, tiny_config("unused", "unused"), 2)
  wider = tiny_config("unused", "unused", **{"model.width": 8, "heads.projector_output_dim": 4})
  with pytest.raises(ConfigError) as info:
    config_lib.check_resume_compatible(typed(wider), str(tmp_path))
  assert str(info.value) == (
      f"cannot resume {tmp_path}: its checkpoints were written for another model "
      f"(heads.projector_output_dim: 8 -> 4, model.width: 4 -> 8); use a new --workdir, or "
      f"--config.heads.projector_output_dim=8 --config.model.width=4 to resume it")


def test_resuming_with_another_batch_size_or_optimizer_is_refused_naming_the_override(tmp_path):
  _saved_run(tmp_path, tiny_config("unused", "unused"), 2)
  changed = tiny_config("unused", "unused", global_batch_size=64,
                        **{"optimizer.warmup_steps": 10})
  with pytest.raises(ConfigError) as info:
    config_lib.check_resume_compatible(typed(changed), str(tmp_path))
  assert str(info.value) == (
      f"cannot resume {tmp_path} with another optimisation (global_batch_size: 32 -> 64, "
      f"optimizer.warmup_steps: 5 -> 10): it would change the learning rate of a run in "
      f"progress; use a new --workdir, --config.global_batch_size=32 "
      f"--config.optimizer.warmup_steps=5 to resume it as it was, or --allow_config_changes to "
      f"resume with the new values (recorded in {tmp_path}/config_history.jsonl)")
  resume = config_lib.check_resume_compatible(typed(changed), str(tmp_path),
                                              allow_config_changes=True)
  assert resume.step == 2 and resume.changes == {
      "global_batch_size": (32, 64), "optimizer.warmup_steps": (5, 10)}


def test_total_steps_below_the_latest_checkpoint_is_refused_and_above_it_extends(tmp_path):
  _saved_run(tmp_path, tiny_config("unused", "unused", total_steps=6), 6)
  with pytest.raises(ConfigError) as info:
    config_lib.check_resume_compatible(typed(tiny_config("unused", "unused", total_steps=4)),
                                      str(tmp_path))
  assert str(info.value) == (
      f"cannot resume {tmp_path}: total_steps=4 is below step 6 of its latest checkpoint; pass "
      f"--config.total_steps=6 or more, or use a new --workdir")
  longer = config_lib.check_resume_compatible(
      typed(tiny_config("unused", "unused", total_steps=9)), str(tmp_path))
  assert longer.step == 6 and longer.changes == {"total_steps": (6, 9)}


def test_extending_a_finished_run_says_how_the_learning_rate_changes_and_keeps_the_history(
    fake_fmnist, tmp_path, capsys):
  def config(**overrides):
    return tiny_config(*fake_fmnist, checkpoint_every_steps=100,
                       **{"optimizer.warmup_steps": 2, **overrides})

  train.train_and_evaluate(config(total_steps=4), str(tmp_path))
  capsys.readouterr()
  # total_steps 4 -> 6: the cosine is stretched over 6 steps; at step 4 it was 0 (the end
  # of the old schedule) and is now peak * (1 + cos(pi * (4 - 2) / (6 - 2))) / 2 = peak / 2,
  # peak = 4e-3 * 32 / 256 = 5e-4.
  out = train.train_and_evaluate(config(total_steps=6), str(tmp_path))
  assert out["step"] == 6
  lines = capsys.readouterr().out.splitlines()
  assert lines[:3] == [
      f"resumed from step 4 of 6 ({tmp_path}/checkpoints/4)",
      f"config changed since the last start: total_steps: 4 -> 6 (every start's config is in "
      f"{tmp_path}/config_history.jsonl)",
      "total_steps 4 -> 6: the warmup-cosine schedule now ends at step 6; the learning rate "
      "at step 4 changes from 0 to 0.00025"]
  records = {r["step"]: r for r in map(json.loads, open(tmp_path / "metrics.jsonl"))}
  assert records[5]["learning_rate"] == pytest.approx(2.5e-4)  # step 5 ran at step 4's rate

  # A batch size change needs --allow_config_changes; then it is said and recorded too.
  # peak = 4e-3 * 64 / 256 = 1e-3; at step 6 of 8: 1e-3 * (1 + cos(pi * 4 / 6)) / 2 = 2.5e-4.
  with pytest.raises(ConfigError, match=r"global_batch_size: 32 -> 64"):
    train.train_and_evaluate(config(total_steps=8, global_batch_size=64), str(tmp_path))
  assert json.load(open(tmp_path / "config.json"))["global_batch_size"] == 32  # untouched
  capsys.readouterr()
  train.train_and_evaluate(config(total_steps=8, global_batch_size=64), str(tmp_path),
                           allow_config_changes=True)
  lines = capsys.readouterr().out.splitlines()
  assert lines[1:3] == [
      f"config changed since the last start: global_batch_size: 32 -> 64, total_steps: 6 -> 8 "
      f"(every start's config is in {tmp_path}/config_history.jsonl)",
      "total_steps 6 -> 8: the warmup-cosine schedule now ends at step 8; the learning rate "
      "at step 6 changes from 0 to 0.00025"]
  history = [json.loads(line) for line in open(tmp_path / "config_history.jsonl")]
  assert [(row["start_step"], row["changes"], row["config"]["total_steps"],
           row["config"]["global_batch_size"]) for row in history] == [
               (0, {}, 4, 32), (4, {"total_steps": [4, 6]}, 6, 32),
               (6, {"global_batch_size": [32, 64], "total_steps": [6, 8]}, 8, 64)]
  assert json.load(open(tmp_path / "config.json"))["global_batch_size"] == 64


def test_runs_end_with_a_done_line_and_a_finished_run_is_not_redone(
    fake_fmnist, tmp_path, capsys, monkeypatch):
  config = tiny_config(*fake_fmnist, total_steps=2, evaluate=True,
                       **{"eval.protocols": "knn", "eval.baselines": False})
  evaluate = evaluate_run.evaluate

  def interrupted_evaluation(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)  # the handler raises in here

  # Ctrl-C during the evaluation: training is complete, nothing is left to save.
  monkeypatch.setattr(evaluate_run, "evaluate", interrupted_evaluation)
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out["interrupted"] == "SIGINT" and out["step"] == 2
  assert capsys.readouterr().out.splitlines()[-1] == (
      f"stopped by SIGINT during the evaluation: training is complete ({tmp_path}/checkpoints/2); "
      f"rerun the same command to evaluate it")
  assert not (tmp_path / "train.lock").exists()

  # The rerun only evaluates, and says where everything is.
  monkeypatch.setattr(evaluate_run, "evaluate", evaluate)
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out["results"]["steps"] == 2 and 0 <= out["results"]["knn_top1"] <= 1
  lines = capsys.readouterr().out.splitlines()
  assert "step 1/2" not in "\n".join(lines)  # nothing retrained
  assert lines[-1] == f"done: results in {tmp_path}/results.json, checkpoint {tmp_path}/checkpoints/2"

  # Finished and evaluated: one line, nothing redone (neither training nor evaluation).
  def fail(*args, **kwargs):
    raise AssertionError("redid work")

  monkeypatch.setattr(evaluate_run, "evaluate", fail)
  monkeypatch.setattr(train, "make_train_step", fail)
  results = (tmp_path / "results.json").read_text()
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out["results"] == json.loads(results) and out["state"] is None
  assert capsys.readouterr().out.splitlines() == [
      f"already finished: {tmp_path} was trained to step 2 of 2, nothing was redone; results in "
      f"{tmp_path}/results.json, checkpoint {tmp_path}/checkpoints/2; to evaluate again: "
      f"python -m jax_ssl.evaluate --workdir {tmp_path}"]
  assert (tmp_path / "results.json").read_text() == results

  # Changed keys of a finished run are named as not applied.
  config.eval.knn_k = 5
  train.train_and_evaluate(config, str(tmp_path))
  assert capsys.readouterr().out.splitlines() == [
      f"already finished: {tmp_path} was trained to step 2 of 2, nothing was redone (these config "
      f"changes were not applied: eval.knn_k: 200 -> 5); results in {tmp_path}/results.json, "
      f"checkpoint {tmp_path}/checkpoints/2; to evaluate again: python -m jax_ssl.evaluate "
      f"--workdir {tmp_path}"]


def test_a_run_without_evaluation_ends_with_a_done_line_and_says_how_to_evaluate(
    fake_fmnist, tmp_path, capsys):
  config = tiny_config(*fake_fmnist, total_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  evaluate = f"python -m jax_ssl.evaluate --workdir {tmp_path}"
  assert capsys.readouterr().out.splitlines()[-1] == (
      f"done: checkpoint {tmp_path}/checkpoints/2 (evaluate=False; to evaluate it: {evaluate})")
  train.train_and_evaluate(config, str(tmp_path))
  assert capsys.readouterr().out.splitlines() == [
      f"already finished: {tmp_path} was trained to step 2 of 2, nothing was redone; checkpoint "
      f"{tmp_path}/checkpoints/2; evaluate=False, to evaluate it: {evaluate}"]
