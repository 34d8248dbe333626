#!/bin/bash
# Trains one experiment on every worker of an existing Cloud TPU VM slice (single- or multi-host).
#
#   tools/launch_tpu.sh --tpu NAME --zone ZONE --project PROJECT \
#       --config experiments/imagenet/simclr_resnet50.py --workdir gs://BUCKET/simclr_in1k \
#       [--config.KEY=VALUE ...] [--dry-run] [--no-install] [--detach] [-- TRAINER FLAGS ...]
#
# What it runs (--dry-run prints exactly these commands and runs nothing; docs/launch.md):
#   1. tar this checkout's package sources (pyproject.toml, README.md, LICENSE, jax_ssl/,
#      experiments/) into one file;
#   2. gcloud compute tpus tpu-vm scp that file to every worker (--worker=all);
#   3. gcloud compute tpus tpu-vm ssh --worker=all: unpack it in ~/jax_ssl, make
#      ~/jax_ssl_venv with python3.11 (from the deadsnakes PPA where the image has none) and
#      pip install "jax[tpu]" and the package with its [all,gcs] extras;
#   4. gcloud compute tpus tpu-vm ssh --worker=all: the same trainer command on every worker,
#      `python -m jax_ssl.train --config CONFIG --workdir WORKDIR ...` in ~/jax_ssl.
# Steps 1-3 are skipped with --no-install (a rerun after a preemption on the same VMs).
# With --detach the trainer runs under nohup with its output in ~/jax_ssl_train.log on each
# worker, so closing this terminal does not stop it; without it the output of all workers
# streams here, and an ssh connection lost stops the run (it resumes from its last checkpoint).
#
# It creates and deletes no TPU: make the slice first (`gcloud compute tpus tpu-vm create`).
# Every worker runs the same command with no multi-host flags: the trainer initialises
# jax.distributed from the TPU environment (JAX's Cloud TPU detection), every worker reads
# its share of each batch, and process 0 writes the shared files. The workers share no disk,
# so the workdir (and the dataset's data_dir) should be a gs:// bucket.
#
# Followed: big_vision's README "Cloud TPU VM setup" (scp the code to --worker=all, one
# `gcloud compute tpus tpu-vm ssh $NAME --zone=$ZONE --worker=all --command "..."` that
# installs into a venv, big_vision/run_tpu.sh, and the same train command on every worker
# with a gs:// workdir), and maxtext's docs/getting_started/Run_MaxText_via_multihost_runner.md
# (install on all workers, then the same train command; long-lived ssh connections are not
# for long jobs: hence --detach).
set -euo pipefail

usage() {
  echo "usage:"
  sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//'
}

fail() {  # one line naming the fix, exit code 2 (the shell's code for a usage mistake)
  echo "error: $*" >&2
  exit 2
}

# One shell word, quoted only where a shell would split or expand it: the printed commands
# can be pasted into a shell, and the trainer command survives the remote shell unchanged.
quote() {
  local word=$1
  if [[ $word =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$word"
  else
    printf "'%s'" "${word//\'/\'\\\'\'}"
  fi
}

quote_all() {
  local out="" word
  for word in "$@"; do
    out+="${out:+ }$(quote "$word")"
  done
  printf '%s' "$out"
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tpu="" zone="" project="" config="" workdir=""
dry_run=0 install=1 detach=0
trainer_args=()

value_of() {  # --flag VALUE or --flag=VALUE; sets `value` and how many words were used
  local flag=$1
  shift
  if [[ $1 == *=* ]]; then
    value=${1#*=}
    used=1
  elif [[ $# -ge 2 ]]; then
    value=$2
    used=2
  else
    fail "$flag needs a value ($flag VALUE)"
  fi
  [[ -n $value ]] || fail "$flag is empty; give it a value"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --tpu|--tpu=*) value_of --tpu "$@"; tpu=$value; shift "$used" ;;
    --zone|--zone=*) value_of --zone "$@"; zone=$value; shift "$used" ;;
    --project|--project=*) value_of --project "$@"; project=$value; shift "$used" ;;
    --config|--config=*) value_of --config "$@"; config=$value; shift "$used" ;;
    --workdir|--workdir=*) value_of --workdir "$@"; workdir=$value; shift "$used" ;;
    --config.*) trainer_args+=("$1"); shift ;;
    --dry-run) dry_run=1; shift ;;
    --no-install) install=0; shift ;;
    --detach) detach=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; trainer_args+=("$@"); break ;;
    *) fail "unknown argument '$1'; flags: --tpu --zone --project --config --workdir" \
            "--config.KEY=VALUE --dry-run --no-install --detach (trainer flags after --)" ;;
  esac
done

[[ -n $tpu ]] || fail "--tpu is missing: the name of the TPU VM slice (gcloud compute tpus tpu-vm list)"
[[ -n $zone ]] || fail "--zone is missing: the slice's zone, e.g. --zone us-central2-b"
[[ -n $project ]] || fail "--project is missing: the Google Cloud project that holds the slice"
[[ -n $config ]] || fail "--config is missing: an experiment file of this checkout, e.g. --config experiments/imagenet/simclr_resnet50.py"
[[ -n $workdir ]] || fail "--workdir is missing: where the run writes, e.g. --workdir gs://BUCKET/simclr_in1k"
config_file=${config%%:*}  # PATH[:ARG]
[[ $config_file != /* && -f $ROOT/$config_file ]] ||
  fail "--config $config: no experiment file $config_file in this checkout ($ROOT); give its path relative to it, e.g. experiments/imagenet/simclr_resnet50.py"
if [[ $workdir != gs://* ]]; then
  echo "warning: --workdir $workdir is not a gs:// bucket: the workers of a multi-host slice share" \
       "no disk, so each would keep only its own part of the checkpoints (fine on a one-host slice)" >&2
fi
if [[ $dry_run == 0 ]] && ! command -v gcloud >/dev/null; then
  fail "gcloud not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), or add --dry-run to print the commands"
fi

run() {  # prints the command; runs it unless --dry-run
  if [[ $dry_run == 1 ]]; then
    quote_all "$@"
    echo
  else
    echo "+ $(quote_all "$@")" >&2
    "$@"
  fi
}

gcloud_where=(--zone="$zone" --project="$project" --worker=all)
archive="${TMPDIR:-/tmp}/jax_ssl_src_$tpu.tar.gz"
remote_python='$HOME/jax_ssl_venv/bin/python'

if [[ $install == 1 ]]; then
  run tar -czf "$archive" --exclude=__pycache__ -C "$ROOT" pyproject.toml README.md LICENSE jax_ssl experiments
  run gcloud compute tpus tpu-vm scp "$archive" "$tpu:jax_ssl_src.tar.gz" "${gcloud_where[@]}"
  setup=(
    'set -e'
    'if ! command -v python3.11 >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq software-properties-common && sudo add-apt-repository -y ppa:deadsnakes/ppa && sudo apt-get install -y -qq python3.11 python3.11-venv; fi'
    'rm -rf $HOME/jax_ssl && mkdir -p $HOME/jax_ssl && tar -xzf $HOME/jax_ssl_src.tar.gz -C $HOME/jax_ssl'
    'test -x $HOME/jax_ssl_venv/bin/python || python3.11 -m venv $HOME/jax_ssl_venv'
    '$HOME/jax_ssl_venv/bin/python -m pip install -q -U pip'
    '$HOME/jax_ssl_venv/bin/python -m pip install -q "jax[tpu]" "$HOME/jax_ssl[all,gcs]"'
  )
  setup_command=""
  for line in "${setup[@]}"; do
    setup_command+="${setup_command:+; }$line"
  done
  run gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_where[@]}" --command "$setup_command"
fi

train="$remote_python -m jax_ssl.train $(quote_all --config "$config" --workdir "$workdir" ${trainer_args[@]+"${trainer_args[@]}"})"
if [[ $detach == 1 ]]; then
  train="nohup $train > \$HOME/jax_ssl_train.log 2>&1 < /dev/null &"
fi
train="cd \$HOME/jax_ssl && $train"
run gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_where[@]}" --command "$train"
