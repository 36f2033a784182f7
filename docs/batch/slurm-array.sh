#!/usr/bin/env bash
# Convert a manifest over a Slurm job array: task k of N runs the jobs whose 0-based line index
# is k mod N (timmconv reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT itself).
#
#   sbatch --array=0-7 docs/batch/slurm-array.sh zoo/manifest.jsonl
#
#SBATCH --job-name=timmconv-zoo
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --time=02:00:00
#SBATCH --output=timmconv-%A_%a.log
set -euo pipefail
manifest=${1:?usage: sbatch --array=0-N docs/batch/slurm-array.sh MANIFEST.jsonl}
report_dir=${REPORT_DIR:-$(dirname "$manifest")/reports}
mkdir -p "$report_dir"
# a rerun of the same array skips every output already converted with the same options
timmconv batch "$manifest" \
  --jobs "${SLURM_CPUS_PER_TASK:-1}" \
  --report "$report_dir/task-${SLURM_ARRAY_TASK_ID}.jsonl"
