#!/bin/bash
# The Kubernetes example (examples/kubernetes/csfuse-job.yaml) checked without a cluster:
#   1. it validates, strictly (no unknown fields), against the Kubernetes API's JSON schemas that
#      the PyPI package kubernetes-validate bundles, and a broken copy does not;
#   2. it runs the image that the docs build from the Dockerfile, whose entry point is csfuse, with
#      `batch ... --shards` equal to `completions`, and csfuse accepts those arguments.
#
#   tests/kubernetes/validate.sh [VENV]
#
# Installs kubernetes-validate into VENV (default target/ci-venv) when missing; without network it
# says it is skipped, except under CI. The last line is in cargo's `test result:` form.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$repo/target/ci-venv}
manifest=$repo/examples/kubernetes/csfuse-job.yaml
. "$repo/tests/check-lib.sh"
check_label=kubernetes
need_tool "$venv" kubernetes-validate kubernetes-validate kubernetes

version=$("$venv/bin/kubernetes-validate" --version)
if out=$("$venv/bin/kubernetes-validate" --strict "$manifest" 2>&1); then
  ok "manifest_validates_strictly_against_the_api_schema (kubernetes-validate $version: $(echo "$out" | tail -1))"
else
  fail manifest_validates_strictly_against_the_api_schema "$out"
fi
broken=$(mktemp --suffix=.yaml)
sed 's/completionMode: Indexed/completionMode: Indexed\n  completionIndex: 3/; s/cpu: "4"/cpu: four/' "$manifest" >"$broken"
if ! "$venv/bin/kubernetes-validate" --strict "$broken" >/dev/null 2>&1; then
  ok a_broken_manifest_is_rejected
else
  fail a_broken_manifest_is_rejected "an unknown field and a bad quantity passed"
fi
rm -f "$broken"

# The image, entry point and arguments agree with the Dockerfile, the docs and csfuse itself.
csfuse=$repo/target/release/csfuse
[ -x "$csfuse" ] || (cd "$repo" && cargo build --release --locked -q) || exit 1
if msg=$("$venv/bin/python" - "$manifest" "$repo" "$csfuse" <<'PY'
import re, subprocess, sys, tempfile, yaml
manifest, repo, csfuse = sys.argv[1:]
job = yaml.safe_load(open(manifest))
spec = job["spec"]
pod = spec["template"]["spec"]
(c,) = pod["containers"]
docs = open(f"{repo}/docs/volumes-and-batch.md").read() + open(manifest).read()
built = set(re.findall(r"docker build -t (\S+) \.", docs))
assert built == {c["image"]}, f"image {c['image']} but the docs build {built}"
docker = open(f"{repo}/Dockerfile").read()
assert 'ENTRYPOINT ["csfuse"]' in docker, "the Dockerfile's entry point is not csfuse"
assert "USER csfuse" in docker and pod["securityContext"]["runAsUser"] == 1000
args = c["args"]
assert args[0] == "batch", args
n = int(args[args.index("--shards") + 1])
assert n == spec["completions"], f"--shards {n} but completions {spec['completions']}"
assert spec["completionMode"] == "Indexed"
# csfuse accepts these arguments: pod 3 of 8 finds nothing to do in a one-row list.
with tempfile.TemporaryDirectory() as d:
    open(f"{d}/pairs.csv", "w").write("a,b,output\nct.png,mr.png,fused.png\n")
    run = [a.replace("/data", d) for a in args]
    r = subprocess.run([csfuse, "-q", *run], env={"JOB_COMPLETION_INDEX": "3"}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
print(f"image {c['image']}, {n} shards")
PY
2>&1); then
  ok "manifest_matches_the_dockerfile_the_docs_and_csfuse ($msg)"
else
  fail manifest_matches_the_dockerfile_the_docs_and_csfuse "$msg"
fi
results "Kubernetes manifest"
