#!/usr/bin/env bash
# The GitHub workflow checked here, since no GitHub runner is at hand:
#   1. .github/workflows/*.yml validate against the workflow schema that check-jsonschema (PyPI)
#      vendors, and a copy with a misspelt key does not;
#   2. data-test-skips.sh names every test that reads the data only CI keeps beside the clone
#      (reference(...), CSFUSE_METRICS_REFERENCE_DIR, CSFUSE_MEDICAL_DEV_DIR), so the workflow's
#      `--ignored` step runs on a clone without it.
# Installs check-jsonschema into VENV (default target/ci-venv) when missing; without network it
# says it is skipped, except under CI. The last line is in cargo's `test result:` form.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$repo/target/ci-venv}
cd "$repo"
. tests/check-lib.sh
check_label=workflow
need_tool "$venv" check-jsonschema check-jsonschema workflow

schema=(--builtin-schema vendor.github-workflows)
if out=$("$venv/bin/check-jsonschema" "${schema[@]}" .github/workflows/*.yml 2>&1); then
  ok "workflows_validate_against_the_schema"
else
  fail workflows_validate_against_the_schema "$out"
fi
broken=$(mktemp --suffix=.yml)
sed 's/^    runs-on:/    runs_on:/' .github/workflows/ci.yml >"$broken"
if "$venv/bin/check-jsonschema" "${schema[@]}" "$broken" >/dev/null 2>&1; then
  fail a_misspelt_key_is_caught "a workflow with runs_on validated"
else
  ok a_misspelt_key_is_caught
fi
rm -f "$broken"

# Every test function whose body reads the CI-only data, by the helpers and variables that reach it
# (attributes and comments aside). A helper that reads it is reached through tests that say so.
skips=$(.github/data-test-skips.sh | sed 's/^--skip //' | sort -u)
readers=$(find src tests -name '*.rs' -print0 | xargs -0 awk '
  /^ *#\[test\]/ { test_next = 1 }
  /^ *(pub(\(crate\))? )?fn [a-z0-9_]+/ {
    match($0, /fn [a-z0-9_]+/); name = substr($0, RSTART + 3, RLENGTH - 3)
    is_test = test_next; test_next = 0
  }
  /reference\(|CSFUSE_METRICS_REFERENCE_DIR|CSFUSE_MEDICAL_DEV_DIR/ && !/^ *(#|\/\/)/ && is_test { print name }
' | sort -u)
missing=()
for f in $readers; do
  grep -qx "$f" <<<"$skips" || missing+=("$f")
done
if [ ${#missing[@]} = 0 ]; then
  ok "data_tests_are_skipped_on_github ($(wc -l <<<"$skips") skips cover the $(wc -w <<<"$readers") tests that read the data)"
else
  fail data_tests_are_skipped_on_github "read CI-only data but no #[ignore] reason says so: ${missing[*]}"
fi

results "GitHub workflow"
