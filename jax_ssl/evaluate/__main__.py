"""`python -m jax_ssl.evaluate --workdir DIR`: evaluate a checkpoint of any run.

  python -m jax_ssl.evaluate --workdir DIR [--protocols knn,linear,attentive,finetune,lowlabel] [--step N]
  python -m jax_ssl.evaluate --workdir DIR --report                 # pictures + DIR/report.md
  python -m jax_ssl.evaluate --workdir DIR --export_features OUT [--split train,test]

DIR (and OUT) may be a URL such as gs://bucket/run (`pip install 'jax_ssl[gcs]'`).
Rebuilds the model from DIR/config.json and restores the TrainState of step N (default: the
latest checkpoint). Without --protocols it runs the run's `eval.protocols` (the trainer's
post-training evaluation), unless only --report or --export_features is asked for. Results
update DIR/results.json (keys of protocols not rerun are kept when the step is the same).
Flags given on the command line override the run's saved config: `--noreport` writes no
report even if the run's `eval.report` is on (without either flag, `eval.report` decides).
Quiet by default (absl verbosity WARNING: Orbax logs every file it reads at INFO);
`--verbosity 0` shows those lines.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from jax_ssl import backends, distributed
from jax_ssl.config.paths import absolute_path
from jax_ssl.errors import UserInputError
from jax_ssl.evaluate.workdir import evaluate_workdir, load_config

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's output directory.", required=True)
_PROTOCOLS = flags.DEFINE_string(
    "protocols", None, "Comma separated: knn, linear, attentive, finetune, lowlabel, lowlabel-<P>%, retrieval "
    "(default: the run's eval.protocols; none when only --report/--export_features is given).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_REPORT = flags.DEFINE_bool("report", None, "Write DIR/report.md with the results table, "
                            "training curves, a 2-D embedding and the kNN confusion matrix "
                            "(default: the run's eval.report; --noreport: never).")
_EXPORT = flags.DEFINE_string("export_features", None, "Directory for <split>_features.npy and "
                              "<split>_labels.npy (backbone features of the centre views).")
_SPLIT = flags.DEFINE_string("split", "train,test", "Splits for --export_features.")
# As the trainer's: multi-process evaluation starts from the launcher's environment
# (jax_ssl/distributed.py); these flags win over it.
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (default: from the environment).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Number of processes (default: from the environment).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "This process's index (default: from the environment).")


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every file it reads at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    # The run's speed backend's process settings (jax_ssl/backends), before anything starts
    # JAX's backends (distributed.initialize, jax.devices()), which read XLA_FLAGS once.
    backends.prepare_process(load_config(absolute_path(_WORKDIR.value)).backend)
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    evaluate_workdir(absolute_path(_WORKDIR.value), protocol_names=_PROTOCOLS.value,
                     step=_STEP.value, report=_REPORT.value,
                     export_dir=absolute_path(_EXPORT.value, "--export_features"),
                     splits=tuple(s.strip() for s in _SPLIT.value.split(",") if s.strip()))
  except UserInputError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
