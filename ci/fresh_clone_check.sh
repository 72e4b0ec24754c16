#!/usr/bin/env bash
# The README's two set-up commands, exactly as written, on fresh clones, N times in a row.
#
#   bash ci/fresh_clone_check.sh [-n RUNS] [-k] [REPO]
#
# Each run clones REPO (default: this repository; a clone holds what is committed) into a new
# temporary folder as <tmp>/xpnet, and runs there, in a clean shell (no virtual environment
# active, no OPENBLAS_NUM_THREADS, HYPOTHESIS_PROFILE or PYTHONPATH), the two commands of the
# README's "Set-up: two commands" block, read from the clone's README.md. The test command
# thus runs under the Hypothesis "dev" profile (random examples, as a user's first run); its
# seed is drawn at random for every run, printed, and passed through PYTEST_ADDOPTS (pytest
# reads it from the environment), so that the command itself stays as written and a failure
# can be replayed with: PYTEST_ADDOPTS=--hypothesis-seed=SEED python -m pytest
# Logs: <log dir>/run-<i>-{train,tests}.log (printed at the end). Exit status 1 if any run
# failed. -k keeps the clones.
set -uo pipefail

runs=10
keep=0
while getopts "n:k" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    k) keep=1 ;;
    *) echo "usage: $0 [-n RUNS] [-k] [REPO]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: -n takes a positive number of runs, got '$runs'" >&2
  exit 2
fi

# The two commands, from the README's set-up block: the lines after "# 1." and "# 2.".
readme_commands() {
  awk '/^## Set-up: two commands/ {s=1} s && /^```bash/ {b=1; next} b && /^```/ {exit}
       b && /^python3 / {print}' "$1"
}

# A clean shell: the caller's virtual environment off PATH, no variables that change how
# the commands behave.
clean_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v "^${VIRTUAL_ENV:-/nonexistent}/" |
             paste -sd: -)
clean() {
  env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS \
      -u MKL_NUM_THREADS -u HYPOTHESIS_PROFILE -u PYTEST_ADDOPTS -u XPNET_DATA \
      PATH="$clean_path" "$@"
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/xpnet-fresh-clone-logs.XXXXXX")
echo "repository: $repo ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "logs: $logs"
failed=0
for ((i = 1; i <= runs; i++)); do
  work=$(mktemp -d "${TMPDIR:-/tmp}/xpnet-fresh-clone.XXXXXX")
  seed=$(python3 -c 'import secrets; print(secrets.randbelow(2**32))')
  echo "== run $i/$runs: $work/xpnet, Hypothesis profile dev, seed $seed"
  if ! git clone --quiet "$repo" "$work/xpnet"; then
    echo "   clone failed"; failed=$((failed + 1)); continue
  fi
  mapfile -t cmds < <(readme_commands "$work/xpnet/README.md")
  if [ "${#cmds[@]}" -ne 2 ]; then
    echo "   expected 2 commands in the README's set-up block, found ${#cmds[@]}"
    failed=$((failed + 1)); continue
  fi
  ok=1
  for k in 0 1; do
    name=$([ "$k" = 0 ] && echo train || echo tests)
    log="$logs/run-$i-$name.log"
    start=$(date +%s)
    (cd "$work/xpnet" && clean PYTEST_ADDOPTS="--hypothesis-seed=$seed" \
       bash -c "${cmds[$k]}") >"$log" 2>&1
    status=$?
    secs=$(($(date +%s) - start))
    if [ "$k" = 0 ]; then
      result=$(grep -E "^(trained|held-out accuracy)" "$log" | tr '\n' ' ')
    else
      result=$(grep -E "^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)" "$log" | tail -1)
    fi
    echo "   $name: exit $status, ${secs}s: ${result:-see $log}"
    [ "$status" = 0 ] || ok=0
  done
  if [ "$ok" = 1 ]; then
    [ "$keep" = 1 ] || rm -rf "$work"
  else
    failed=$((failed + 1))
    echo "   FAILED: replay in $work/xpnet with PYTEST_ADDOPTS=--hypothesis-seed=$seed" \
         "python -m pytest (logs in $logs)"
  fi
done
echo "== $((runs - failed))/$runs runs passed both README commands"
[ "$failed" = 0 ]
