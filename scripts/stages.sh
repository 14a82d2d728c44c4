# The stage runner of scripts/test.sh, in a file of its own so that scripts/tests/selftest.sh can show that it fails
# a stage that ran nothing. Sourced, not run. The caller sets `root`, `EXPECTED` (stage name -> fewest cases) and the
# counters `stages_passed stages_failed cases_passed cases_failed failed_stages`.

# Prints the cases a stage's log reports: `PASSED FAILED`, or nothing if it reports none.
count_cases() {
  local log=$1
  if grep -q '^test result: ' "$log"; then
    awk '/^test result: /{for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END {print p + 0, f + 0}' "$log"
    return
  fi
  grep -E '(^|[[:space:]:])[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 \
    | sed -E 's/.*(^|[[:space:]:])([0-9]+) passed, ([0-9]+) failed.*/\2 \3/'
}

stage() {
  local name=$1
  shift
  local start=$SECONDS log
  log=$(mktemp "$root/build/stage-$name.XXXXXX.log")
  echo "=== stage $name: $*"
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  local counts passed failed problem=
  counts=$(count_cases "$log")
  read -r passed failed <<< "${counts:-}"
  passed=${passed:-0}
  failed=${failed:-0}
  local expected=${EXPECTED[$name]:-1}
  if [ "$status" -ne 0 ]; then
    problem="exit status $status"
  elif [ -z "$counts" ]; then
    problem="it printed no \`N passed, N failed\` count"
  elif [ "$failed" -gt 0 ]; then
    problem="$failed case(s) failed"
  elif [ "$passed" -lt "$expected" ]; then
    problem="only $passed case(s) passed, fewer than the $expected it is known to run"
  fi
  cases_passed=$((cases_passed + passed))
  cases_failed=$((cases_failed + failed))
  if [ -z "$problem" ]; then
    stages_passed=$((stages_passed + 1))
    echo "=== stage $name: ok, $passed passed, $failed failed ($((SECONDS - start)) s)"
  else
    stages_failed=$((stages_failed + 1))
    [ "$failed" -eq 0 ] && cases_failed=$((cases_failed + 1))
    failed_stages+=("$name")
    echo "=== stage $name: FAILED: $problem ($((SECONDS - start)) s)"
  fi
  rm -f "$log"
}

# fmt and clippy are one check each.
one_check() {
  if "$@"; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; return 1; fi
}

