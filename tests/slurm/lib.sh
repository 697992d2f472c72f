# Shared by tests/slurm/*_test.sh (sourced). A test calls `slurm_test_setup` first: it finds the
# clipshard binary and a Slurm cluster — the one in $SLURM_CONF if it answers (scripts/with-slurm.sh
# starts one for the whole test run), else its own from scripts/slurm-local.sh in a temp dir, stopped
# again when the test exits. Exit 77 (= skipped, shown by ctest) with the reason when Slurm cannot run.
set -uo pipefail

src=${CLIPSHARD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${CLIPSHARD_BINARY:-$src/build/driver/clipshard}
work=""
own_cluster=""

note() { echo "[$(date +%T)] $*"; }
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIPPED: $*"; exit 77; }

slurm_test_cleanup() {
  if [[ -n "${SLURM_CONF:-}" && -n "${test_jobs:-}" ]]; then scancel $test_jobs 2>/dev/null; fi
  if [[ -n "$own_cluster" ]]; then "$src/scripts/slurm-local.sh" stop "$own_cluster" >/dev/null 2>&1; fi
  if [[ -n "$work" && "${CLIPSHARD_KEEP_TEST_DIR:-0}" != 1 ]]; then rm -rf "$work"; fi
}

slurm_test_setup() {
  [[ -x "$bin" ]] || fail "clipshard binary not found at '$bin' (set CLIPSHARD_BINARY; build the clipshard target)"
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  work=$(mktemp -d "${TMPDIR:-/tmp}/clipshard-slurm-test.XXXXXX")
  chmod 755 "$work"
  trap slurm_test_cleanup EXIT
  if [[ -n "${SLURM_CONF:-}" ]] && timeout 10 sinfo -h >/dev/null 2>&1; then
    note "using the running cluster at SLURM_CONF=$SLURM_CONF"
  else
    own_cluster=$work/cluster
    local out rc
    out=$("$src/scripts/slurm-local.sh" start "$own_cluster" 2>"$work/slurm-local.err"); rc=$?
    cat "$work/slurm-local.err"
    if ((rc == 77)); then skip "no Slurm here: $(grep 'cannot start' "$work/slurm-local.err" | tail -1)"; fi
    ((rc == 0)) || fail "scripts/slurm-local.sh start failed (exit $rc)"
    eval "$out"
    export SLURM_CONF
  fi
  sinfo -N -o '%N %T %c %G' | sed 's/^/  sinfo: /'
  test_jobs=""
}

# job_field JOB FIELD -> value of FIELD= in `scontrol show job` ("" if unknown)
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | head -1 | cut -d= -f2-; }

# wait_job_state JOB SECONDS STATE... : waits until the job's state is one of STATE..., else fails.
wait_job_state() {
  local job=$1 limit=$2 st deadline; shift 2
  deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    st=$(job_field "$job" JobState)
    for want in "$@"; do [[ "$st" == "$want" ]] && return 0; done
    sleep 0.5
  done
  fail "job $job still '$st' after ${limit}s (waited for: $*); scontrol: $(scontrol show job "$job" | tr -s ' \n' ' ')"
}

# submit ARGS... -> job id (slurm/submit.sh, logs in $work/logs); records the job for cleanup.
submit() {
  local out
  out=$("$src/slurm/submit.sh" --log-dir "$work/logs" --clipshard "$bin" "$@") || fail "submit.sh failed: $out"
  echo "$out" >&2
  job=$(grep -o 'submitted job [0-9]*' <<<"$out" | grep -o '[0-9]*$')
  [[ -n "$job" ]] || fail "no job id in: $out"
  test_jobs+=" $job"
}

# status_field RUN_DIR KEY -> number from `clipshard status RUN_DIR`
status_field() {
  "$bin" status "$1" 2>/dev/null | grep -o "\"$2\"[[:space:]]*:[[:space:]]*[0-9]*" | grep -o '[0-9]*$'
}

show_log() { echo "---- $1"; sed 's/^/  | /' "$1"; echo "----"; }
