#!/usr/bin/env bash
# Offline checks of terraform/ (called by `make lint` and `make test`):
#   1. formatting      hclfmt on every .tf/.hcl file (and `terraform fmt
#                      -check -recursive` too where a terraform binary exists)
#   2. tflint          bundled terraform ruleset (preset all) + the project's
#                      AWS ruleset plugin, on every module and the composition;
#                      the plugin must load and must flag its negative fixture
#   3. checkov         zero failed checks; skips only as listed in .checkov.yaml
#   4. invariants      tests/terraform/test_invariants.py --self-test
#   5. naming          tests/terraform/test_naming.py (where terraform exists):
#                      the Lambda module computes the operator's AWS names
#   6. parliament      no finding on any IAM policy `make iam-policies` renders
#                      (the operator's, the worker boundary, the example's
#                      worker role), built from the declared AWS calls
# Tools come from install-tools.sh (cached outside the checkout).
# Exits non-zero on any failure; the last line is
#   terraform checks: N passed, M failed
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

passed=0
failed=0
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# record NAME CMD...: run CMD, count it, show its output only when it fails.
record() {
  local name=$1
  shift
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name"
    sed 's/^/    /' "$log" | head -n 200
  fi
}

finish() {
  if [ "$failed" -gt 0 ]; then
    printf 'failed:\n'
    printf '  - %s\n' "${failures[@]}"
  fi
  echo "terraform checks: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# --- tools -------------------------------------------------------------------
start=$(date +%s)
if ! env_lines=$(bash "$here/install-tools.sh"); then
  echo "FAIL install-tools.sh (see the messages above)"
  failed=$((failed + 1))
  failures+=("install-tools")
  finish
fi
eval "$env_lines"
echo "tools: $TF_TOOLS_VERSIONS (ready in $(($(date +%s) - start))s)"

tf_dirs=()
while IFS= read -r d; do tf_dirs+=("$d"); done < <(find terraform -name '*.tf' -not -path '*/.terraform/*' -exec dirname {} \; | LC_ALL=C sort -u)

# --- 1. formatting -----------------------------------------------------------
hcl_files=()
while IFS= read -r f; do hcl_files+=("$f"); done < <(
  { find terraform tests/terraform/fixtures -name '*.tf' -o -name '*.hcl' -o -name '*.hcl.example' -o -name '*.tfvars.example'
    echo .tflint.hcl; } | grep -v '/.terraform/' | LC_ALL=C sort)

fmt_hclfmt() {
  local f rc=0
  for f in "${hcl_files[@]}"; do
    if ! "$HCLFMT" -require-no-change "$f" >/dev/null 2>&1; then
      echo "not formatted (fix: $HCLFMT -w $f): $f"
      "$HCLFMT" "$f" 2>&1 | diff -u "$f" - | head -n 40
      rc=1
    fi
  done
  return $rc
}
record "fmt: hclfmt on ${#hcl_files[@]} files" fmt_hclfmt

gofmt_plugin() {
  local out
  out=$(gofmt -l "$here/tflint-ruleset-movieapp") || return 1
  [ -z "$out" ] || { echo "not gofmt-formatted (fix: gofmt -w):"; echo "$out"; return 1; }
}
record "fmt: gofmt on tests/terraform/tflint-ruleset-movieapp" gofmt_plugin

if command -v terraform >/dev/null 2>&1; then
  record "fmt: terraform fmt -check -recursive ($(terraform version 2>/dev/null | head -n1))" \
    env TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff terraform tests/terraform/fixtures
else
  echo "note: no terraform binary on PATH; hclfmt (the formatter terraform fmt is built on) checked formatting"
fi

# --- 2. tflint ---------------------------------------------------------------
export TFLINT_PLUGIN_DIR
tflint_cfg="$repo/.tflint.hcl"

tflint_loads_plugin() {
  local out
  out=$("$TFLINT" --config="$tflint_cfg" --version) || return 1
  echo "$out"
  grep -q 'ruleset.movieapp' <<<"$out" && grep -q 'ruleset.terraform' <<<"$out"
}
record "tflint: loads the movieapp AWS ruleset and the terraform ruleset" tflint_loads_plugin

for d in "${tf_dirs[@]}"; do
  record "tflint: $d" "$TFLINT" --config="$tflint_cfg" --chdir="$d" --format=compact
done

# Every rule of the plugin must fire on its negative fixture.
tflint_rejects_fixture() {
  local out rule rc=0
  out=$("$TFLINT" --config="$tflint_cfg" --chdir=tests/terraform/fixtures/tflint-negative --format=compact 2>&1)
  echo "$out"
  for rule in movieapp_aws_invalid_enum_value movieapp_aws_instance_type \
    movieapp_aws_launch_template_imdsv2 movieapp_aws_iam_policy_wildcard \
    movieapp_aws_iam_policy_service_wildcard movieapp_aws_provider_default_tags; do
    if ! grep -q "($rule)" <<<"$out"; then
      echo "rule $rule reported nothing on the negative fixture"
      rc=1
    fi
  done
  return $rc
}
record "tflint: every movieapp rule rejects tests/terraform/fixtures/tflint-negative" tflint_rejects_fixture

# --- 3. checkov --------------------------------------------------------------
checkov_clean() {
  local out
  out=$("$CHECKOV" --config-file "$repo/.checkov.yaml" 2>&1)
  local rc=$?
  echo "$out"
  [ $rc -eq 0 ] && grep -q 'Failed checks: 0,' <<<"$out"
}
record "checkov: zero failed checks (skips listed in .checkov.yaml)" checkov_clean

# --- 4. project invariants ---------------------------------------------------
inv_out=$(mktemp)
"$INVARIANTS_PYTHON" "$here/test_invariants.py" --self-test >"$inv_out" 2>&1
inv_rc=$?
grep -E '^(PASS|FAIL|    )' "$inv_out"
inv_line=$(grep -E '^invariants: [0-9]+ passed, [0-9]+ failed' "$inv_out" | tail -n1)
if [ -n "$inv_line" ]; then
  inv_passed=$(sed -E 's/^invariants: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$inv_line")
  inv_failed=$(sed -E 's/^invariants: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$inv_line")
  passed=$((passed + inv_passed))
  failed=$((failed + inv_failed))
  [ "$inv_failed" -gt 0 ] && failures+=("invariants")
fi
if [ $inv_rc -ne 0 ] && { [ -z "$inv_line" ] || [ "${inv_failed:-0}" -eq 0 ]; }; then
  cat "$inv_out"
  failed=$((failed + 1))
  failures+=("test_invariants.py crashed")
fi
rm -f "$inv_out"

# --- 5. naming rule ----------------------------------------------------------
# The Lambda module finds a MovieApp's resources by the operator's names:
# evaluate its naming module with terraform (no provider needed) and compare.
if command -v terraform >/dev/null 2>&1; then
  record "naming: terraform/modules/lambda/naming equals the operator's physical names" \
    python3 "$here/test_naming.py"
else
  echo "note: no terraform binary on PATH; the Lambda module's naming rule was not evaluated"
fi

# --- 6. parliament -----------------------------------------------------------
parliament_clean() {
  local dir out
  dir=$(mktemp -d)
  cargo run --quiet --locked -p movieapp-operator -- iam-policies --out "$dir" \
    --movieapp examples/movieapp.yaml --events-queue-arn "arn:aws:sqs:us-east-1:123456789012:movieapp-aws-events" >/dev/null || { rm -rf "$dir"; return 1; }
  out=$("$PARLIAMENT" --directory "$dir" </dev/null 2>&1)
  local rc=$?
  rm -rf "$dir"
  echo "$out"
  [ "$rc" -eq 0 ] && [ -z "$out" ]
}
record "parliament: no finding on the rendered IAM policies" parliament_clean

finish
