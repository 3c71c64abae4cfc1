#!/bin/bash
# The Slurm example (examples/slurm) against a live single-node Slurm.
#
#   tests/slurm/live.sh [--live]
#
# Starts a Slurm whose controller and only compute node is this machine (installing Debian's
# slurm-wlm and munge when missing), submits the example array with `sbatch --wait` and checks:
#   1. an array over a list of images and NIfTI volumes writes every output, byte-identical to one
#      `csfuse batch` run without shards, each with its sidecar;
#   2. `scancel` of a running task, then resubmitting, finishes the list without redoing a finished
#      pair and leaves no temporary file;
#   3. a bad row fails its task with exit 1, named in that task's log, while the other task succeeds;
#   4. throughput: pairs per minute with 1 and with 2 one-core tasks, and the speed-up, which must
#      be at least 1.5x on 2 or more cores.
# It needs root (the daemons run as root) and runs only when CI is set or --live is given; elsewhere
# it says so and exits 0. The daemons it started are stopped at the end. The last line is in
# cargo's `test result:` form, so that .ci/run counts these checks with the Rust tests.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${CI:-}" ] && [ "${1:-}" != --live ]; then
  echo "slurm: skipped: the live Slurm test installs and starts slurmctld, slurmd and munged as root;" \
    "run tests/slurm/live.sh --live (CI sets CI=1 and runs it)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "slurm: error: the live Slurm test runs the daemons as root; run it as root" >&2
  exit 1
fi

passed=0 failed=0
ok() { echo "test slurm::$1 ... ok (at ${SECONDS} s)"; passed=$((passed + 1)); }
fail() { echo "test slurm::$1 ... FAILED: $2"; failed=$((failed + 1)); }
say() { echo "slurm: $*"; }

# ---- a single-node Slurm -------------------------------------------------------------------------
state=/tmp/csfuse-slurm
export SLURM_CONF=$state/slurm.conf
started=()
stop_daemons() {
  scancel --quiet --user=root 2>/dev/null || true
  for d in "${started[@]}"; do
    case $d in
      munged) pkill -x munged 2>/dev/null || true ;;
      *) [ -f "$state/run/$d.pid" ] && kill "$(cat "$state/run/$d.pid")" 2>/dev/null || true ;;
    esac
  done
  [ ${#started[@]} -gt 0 ] && say "stopped ${started[*]}"
}
trap stop_daemons EXIT

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null ||
    { echo "slurm: error: could not install slurm-wlm and munge" >&2; exit 1; }
fi
host=$(hostname -s)
cpus=$(nproc)
mem_mib=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))
mkdir -p "$state"/{state,spool,log,run}
cat >"$SLURM_CONF" <<EOF
ClusterName=csfuse-ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
# sbatch --wait polls at most every MinJobAge/2 seconds (else up to 10 s): keep short runs short.
MinJobAge=4
StateSaveLocation=$state/state
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown -R munge: /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null
  chmod 400 /etc/munge/munge.key
  su -s /bin/sh munge -c munged 2>/dev/null || munged --force
  started+=(munged)
fi
if ! scontrol ping 2>/dev/null | grep -q UP; then
  slurmctld -f "$SLURM_CONF" && started+=(slurmctld)
fi
if [ ! -f "$state/run/slurmd.pid" ] || ! kill -0 "$(cat "$state/run/slurmd.pid")" 2>/dev/null; then
  slurmd -f "$SLURM_CONF" && started+=(slurmd)
fi
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -qx idle && break
  sleep 0.5
done
if ! sinfo -h -o %t | grep -qx idle; then
  echo "slurm: error: the node did not come up idle:" >&2
  sinfo >&2; tail -20 "$state"/log/*.log >&2
  exit 1
fi
say "single-node Slurm up: $(sinfo -h -o '%P %D node %t, %c CPUs, %m MiB')"

# ---- csfuse, the example, the data ------------------------------------------------------------
if [ ! -x "$repo/target/release/csfuse" ]; then
  (cd "$repo" && cargo build --release --locked) || exit 1
fi
export CSFUSE=$repo/target/release/csfuse
submit=$repo/examples/slurm/submit.sh
work=$(mktemp -d /tmp/csfuse-slurm-work.XXXXXX)
cd "$work" || exit 1
"$CSFUSE" -q phantom --out-dir small --size 64 --depth 6
"$CSFUSE" -q phantom --out-dir big --size 128 --depth 2
"$CSFUSE" -q phantom --out-dir mid --size 96 --depth 2

# Every output of `a` equal to `b`'s, with a sidecar; prints what differs.
same_outputs() {
  local a=$1 b=$2 n=0 bad=0 f rel
  while IFS= read -r f; do
    rel=${f#"$a"/}
    n=$((n + 1))
    if ! cmp -s "$f" "$b/$rel"; then echo "  differs or missing: $b/$rel"; bad=1; fi
    if [ ! -s "$b/$rel.json" ]; then echo "  no sidecar: $b/$rel.json"; bad=1; fi
  done < <(find "$a" -type f ! -name '*.json' | sort)
  [ "$(find "$b" -type f ! -name '*.json' | wc -l)" = "$n" ] || { echo "  $b holds other outputs"; bad=1; }
  echo "  compared $n outputs byte for byte: $([ $bad = 0 ] && echo identical || echo DIFFERENT)"
  return $bad
}
job_of() { sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p' "$1" | tail -1; }
task_log() { echo "logs/csfuse-$1_$2.log"; }

# ---- 1. the array equals one run ----------------------------------------------------------------
cat >small/pairs.csv <<'EOF'
a,b,output
ct_like.png,mr_like.png,ct_mr.png
mr_like.png,pet_like.png,colour/mr_pet.png
mr_like.png,ct_like.png,mr_ct.png
ct_like.nii.gz,mr_like.nii.gz,volumes/ct_mr.nii.gz
pet_like.png,ct_like.png,pet_ct.png
mr_like.nii.gz,ct_like.nii.gz,volumes/mr_ct.nii.gz
EOF
"$CSFUSE" -q batch small/pairs.csv --out-dir one-run --backend cpu
SBATCH_WAIT=1 "$submit" small/pairs.csv array-out 3 --backend cpu >submit1.txt 2>&1
rc=$?
cat submit1.txt
job=$(job_of submit1.txt)
if [ "$rc" = 0 ] && [ -n "$job" ] && same_outputs one-run array-out; then
  ok "array_of_3_tasks_equals_one_batch_run (job $job)"
else
  fail array_of_3_tasks_equals_one_batch_run "sbatch exit $rc, job '${job}'"
  cat logs/*.log
fi
again=$("$submit" small/pairs.csv array-out 3 --backend cpu 2>&1)
if echo "$again" | grep -q "nothing to submit"; then ok resubmitting_a_finished_list_submits_nothing
else fail resubmitting_a_finished_list_submits_nothing "$again"; fi

# ---- 2. scancel a running task, resubmit --------------------------------------------------------
cat >big/pairs.csv <<'EOF'
a,b,output
ct_like.png,mr_like.png,p1.png
mr_like.png,ct_like.png,p2.png
mr_like.png,pet_like.png,p3.png
pet_like.png,mr_like.png,p4.png
ct_like.png,pet_like.png,p5.png
pet_like.png,ct_like.png,p6.png
EOF
"$CSFUSE" -q batch big/pairs.csv --out-dir big-one-run --backend cpu
"$submit" big/pairs.csv cancelled 2 --backend cpu >submit2.txt 2>&1
cat submit2.txt
job=$(job_of submit2.txt)
# Wait until shard 0 has finished a pair and is still running, then cancel that task only.
for _ in $(seq 300); do
  [ -n "$(find cancelled -name 'p1.png.json' 2>/dev/null)" ] && break
  sleep 0.1
done
scancel "${job}_0"
for _ in $(seq 100); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 0.3
done
before=$(cd cancelled && find . -name '*.json' | sort)
n_before=$(echo "$before" | grep -c json)
say "after scancel of ${job}_0: $n_before of 6 pairs done: $(echo $before)"
sums_before=$(cd cancelled && echo "$before" | xargs -r sha256sum)
SBATCH_WAIT=1 "$submit" big/pairs.csv cancelled 2 --backend cpu >submit3.txt 2>&1
rc=$?
cat submit3.txt
job2=$(job_of submit3.txt)
sums_after=$(cd cancelled && echo "$before" | xargs -r sha256sum)
redone=$(cat logs/csfuse-"${job2}"_*.log 2>/dev/null | grep -c ": wrote " || true)
temps=$(find cancelled -name '*.csfuse-tmp-*' | wc -l)
# Shard 1 ran to its end, so only shard 0 is resubmitted.
if [ "$rc" = 0 ] && grep -q -- "--array=0 " submit3.txt && [ "$n_before" -ge 1 ] && [ "$n_before" -lt 6 ] && [ "$sums_before" = "$sums_after" ] &&
  [ "$redone" = $((6 - n_before)) ] && [ "$temps" = 0 ] && same_outputs big-one-run cancelled; then
  ok "scancel_then_resubmit_finishes_without_redoing (jobs $job, $job2: $n_before kept, $redone fused)"
else
  fail scancel_then_resubmit_finishes_without_redoing \
    "sbatch exit $rc, $n_before done before, $redone fused after, $temps temporary files, sidecars $([ "$sums_before" = "$sums_after" ] && echo kept || echo CHANGED)"
  cat logs/csfuse-"$job"_*.log logs/csfuse-"$job2"_*.log
fi

# ---- 3. a bad row fails its own task ------------------------------------------------------------
head -c 300 /dev/urandom >small/corrupt.png
cat >small/bad.csv <<'EOF'
a,b,output
ct_like.png,mr_like.png,g1.png
mr_like.png,ct_like.png,g2.png
corrupt.png,mr_like.png,bad.png
pet_like.png,mr_like.png,g3.png
EOF
SBATCH_WAIT=1 "$submit" small/bad.csv bad-out 2 --backend cpu >submit4.txt 2>&1
rc=$?
cat submit4.txt
job=$(job_of submit4.txt)
# Data rows 0..3: the corrupt one (line 4) is row 2, shard 0 of 2.
bad_log=$(task_log "$job" 0) good_log=$(task_log "$job" 1)
state0=$(scontrol show job "${job}_0" 2>/dev/null | grep -o 'ExitCode=[0-9:]*' | head -1)
state1=$(scontrol show job "${job}_1" 2>/dev/null | grep -o 'ExitCode=[0-9:]*' | head -1)
if [ "$rc" = 1 ] && grep -q "exit status 1" "$bad_log" && grep -q "bad.csv:4" "$bad_log" &&
  grep -q "exit status 0" "$good_log" && [ -s bad-out/g1.png ] && [ -s bad-out/g2.png ] &&
  [ -s bad-out/g3.png ] && [ ! -e bad-out/bad.png ]; then
  ok "a_bad_row_fails_its_task_alone (job $job: task 0 $state0, task 1 $state1)"
  grep "bad.csv:4" "$bad_log" | tail -1 | sed 's/^/  task 0 log: /'
else
  fail a_bad_row_fails_its_task_alone "sbatch exit $rc; task 0 $state0, task 1 $state1"
  cat "$bad_log" "$good_log"
fi

# ---- 4. throughput ------------------------------------------------------------------------------
{
  echo a,b,output
  for k in 1 2 3 4; do
    echo "ct_like.png,mr_like.png,t$k.png"
    echo "mr_like.png,pet_like.png,c$k.png"
  done
} >mid/pairs.csv
# Pairs per minute from the tasks' own start and end lines (sbatch --wait polls, which would blur
# a short run), and what the sidecars say each shard spent fusing.
throughput() {
  local tasks=$1 out=$2 job
  SBATCH_WAIT=1 "$submit" mid/pairs.csv "$out" "$tasks" --backend cpu --threads 1 >"$out.txt" 2>&1 || return 1
  job=$(job_of "$out.txt")
  python3 - "$job" "$out" <<'EOF'
import datetime, glob, json, re, sys
job, out = sys.argv[1], sys.argv[2]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
starts, ends = [], []
for log in glob.glob(f"logs/csfuse-{job}_*.log"):
    text = open(log).read()
    starts += [t(m) for m in re.findall(r"started (\S+)", text)]
    ends += [t(m) for m in re.findall(r"ended (\S+) with", text)]
spent = {}
for side in glob.glob(f"{out}/*.json"):
    d = json.load(open(side))
    spent[d["shard"]] = spent.get(d["shard"], 0) + d["seconds"]
pairs = len(glob.glob(f"{out}/*.json"))
span = max(ends) - min(starts)
print(f"{pairs} {span:.3f} {60 * pairs / span:.1f} " + ";".join(f"shard {k}: {v:.1f} s" for k, v in sorted(spent.items())))
EOF
}
one=$(throughput 1 tp1) two=$(throughput 2 tp2)
read -r p1 s1 r1 spent1 <<<"$one"
read -r p2 s2 r2 spent2 <<<"$two"
if [ -n "$one" ] && [ -n "$two" ] && [ "$p1" = 8 ] && [ "$p2" = 8 ]; then
  speedup=$(python3 -c "print(f'{$r2 / $r1:.2f}')")
  say "throughput, 8 pairs of 96x96 on $cpus cores, 1-core tasks:"
  say "  1 task:  $r1 pairs/min ($s1 s; sidecars: $spent1)"
  say "  2 tasks: $r2 pairs/min ($s2 s; sidecars: $spent2)"
  say "  speed-up ${speedup}x"
  # Two one-core tasks on two cores fuse 2.1-2.3x the pairs a minute of one (README); under 1.5x
  # the array no longer runs its tasks side by side.
  if [ "$cpus" -ge 2 ] && ! python3 -c "import sys; sys.exit(0 if $r2 / $r1 >= 1.5 else 1)"; then
    fail throughput_of_1_and_2_tasks_measured "2 tasks gave ${speedup}x the pairs a minute of 1, under 1.5x on $cpus cores"
  else
    ok "throughput_of_1_and_2_tasks_measured (speed-up ${speedup}x)"
  fi
else
  fail throughput_of_1_and_2_tasks_measured "runs gave '$one' and '$two'"
  cat logs/*.log
fi

echo "test result: $([ $failed = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored (live Slurm)"
[ $failed = 0 ]
