# Sourced by the shell checks (tests/kubernetes/validate.sh, .github/validate.sh): a PyPI tool in
# a virtual environment, and result lines in cargo's form, which .ci/run counts.

# need_tool VENV PACKAGE COMMAND LABEL: install PACKAGE into VENV unless VENV/bin/COMMAND is there.
# Without it the check says it is skipped and exits 0, except under CI, where it exits 1.
need_tool() {
  local venv=$1 package=$2 command=$3 label=$4
  if [ ! -x "$venv/bin/$command" ]; then
    { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } >/dev/null 2>&1
    "$venv/bin/pip" install -q "$package" >/dev/null 2>&1
  fi
  if [ ! -x "$venv/bin/$command" ]; then
    if [ -n "${CI:-}" ]; then echo "$label: error: could not install $package" >&2; exit 1; fi
    echo "$label: skipped: $package (PyPI) could not be installed here"
    exit 0
  fi
}

# ok NAME [NOTE], fail NAME WHY: one line per check, counted in $passed and $failed under the
# prefix $check_label; results LABEL prints the closing `test result:` line and sets the status.
passed=0 failed=0
ok() { echo "test ${check_label}::$1 ... ok"; passed=$((passed + 1)); }
fail() { echo "test ${check_label}::$1 ... FAILED: $2"; failed=$((failed + 1)); }
results() {
  echo "test result: $([ "$failed" = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored ($1)"
  [ "$failed" = 0 ]
}
