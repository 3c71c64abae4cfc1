#!/bin/bash
# Submit a batch list as a Slurm array, one task per shard that still has work:
#
#   examples/slurm/submit.sh LIST OUT_DIR N [csfuse batch options...]
#
# Cores per task: --threads C among the options (default 1, or 4 with --backend gpu, which also
# asks for one GPU). Memory and time come from `csfuse batch --plan sbatch`. Extra sbatch options
# go in SBATCH_OPTS (e.g. SBATCH_OPTS="--partition=gpu --account=lab"); sbatch's own input
# variables work too (SBATCH_WAIT=1 waits for the array to end and returns its worst exit status).
# Running it again after a failure or a time-out submits only the shards that are not done.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
list=$1 out=$2 shards=$3
shift 3
csfuse=${CSFUSE:-csfuse}
options=$("$csfuse" batch "$list" --out-dir "$out" --shards "$shards" --plan sbatch "$@")
if [ -z "$options" ]; then
  echo "every pair of $list is done in $out; nothing to submit"
  exit 0
fi
mkdir -p logs
echo "sbatch $options ${SBATCH_OPTS:-}"
# shellcheck disable=SC2086 # the options are words
exec sbatch $options ${SBATCH_OPTS:-} "$here/csfuse-array.sbatch" "$list" "$out" "$shards" "$@"
