# Fault injection: a seeded sequence of random faults on one run directory — SIGKILL of
# the driver rank, of a random worker rank or of every rank under mpirun, SIGKILL of a
# single-process run, SIGTERM of every rank or of one random rank — each at a random point (during
# startup or after one more finished shard, plus 0-0.9 s), each followed by a rerun of the same
# command on a random number of ranks (1-3). A run that reaches its end is checked and started
# again in a fresh directory, so the number of faults does not depend on the machine's speed.
# Asserts after every fault that no finished shard was lost and that the job ended as it should
# (SIGKILL: non-zero; SIGTERM: 75), and for every run that reaches its end and at the end that
# output.jsonl and errors.jsonl are byte-identical to an uninterrupted run's and no temporary file
# is left. A fault that lands after the run has finished is tolerated (counted apart). CLIPSHARD_FAULT_SEED and CLIPSHARD_FAULT_ROUNDS change the
# sequence.
source "$(dirname "$0")/../mpi/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
RANDOM=${CLIPSHARD_FAULT_SEED:-20240607}
rounds=${CLIPSHARD_FAULT_ROUNDS:-8}
t0=$SECONDS
done_count() { local n=0; [[ -d $1/parts ]] && n=$(find "$1/parts" -maxdepth 1 -name '*.done.json' | wc -l); echo "$n"; }

make_dataset "$WORK/data" 40 "$CLIPSHARD_FIXTURES/images/large_3000x2000.jpg"
# Evaluator + filter at threshold 0 (keeps every row): every object row reaches output.jsonl.
cfg() {
  cat > "$1" <<JSON
{"input": ["$WORK/data/manifest.jsonl"], "output_dir": "$2", "device": "cpu", "batch_size": 3,
 "lines_per_shard": 2, "progress_interval_s": 1, "decode_threads": 1, "torch_threads": 1,
 "pipeline": [
   {"operator": "ImageCLIPEvaluator", "model_name": "$CLIPSHARD_FIXTURES/models/tiny/hf",
    "input_image_key": "image", "input_text_key": "caption"},
   {"operator": "ImageClipFilter", "model_name": "$CLIPSHARD_FIXTURES/models/tiny/hf",
    "threshold": 0.0}]}
JSON
}
cfg "$WORK/ref.json" "$WORK/ref"
"$CLIPSHARD_BINARY" run "$WORK/ref.json" > "$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; fail "reference run failed"; }
total=$(done_count "$WORK/ref")
echo "reference: $total shards, $(wc -l < "$WORK/ref/output.jsonl") output rows, $(wc -l < "$WORK/ref/errors.jsonl") error records ($((SECONDS - t0)) s)"

cfg "$WORK/run.json" "$WORK/run"
# pids of the clipshard processes of this run, and their MPI ranks (no launcher: rank 0).
rank_of() { local r; r=$(tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'); echo "${r:-0}"; }
run_pids() { pgrep -f "^$CLIPSHARD_BINARY run $WORK/run.json" || true; }
# SIGTERM is only promised to end a run with 75 once clipshard handles it (the handlers are
# installed first thing in `run`; before that, while the dynamic loader maps libtorch, the default
# action applies): wait until every victim's SigCgt mask has bit 15.
catches_term() { local m; m=$(sed -n 's/^SigCgt:\t*//p' "/proc/$1/status" 2>/dev/null); [[ -n $m ]] && (( (16#$m >> 14) & 1 )); }
wait_term_handlers() {
  local p t
  for p in "$@"; do
    for ((t = 0; t < 300; t++)); do catches_term "$p" && break; kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  done
}

injected=0 after_finish=0 cycles=0
for ((round = 1; round <= rounds; round++)); do
  before=$(done_count "$WORK/run")
  np=$((1 + RANDOM % 3))          # 1 = no launcher, else mpirun -np 2|3
  kind=$(((round - 1) % 5))       # every kind of fault in any 5 consecutive rounds
  (( np == 1 && kind < 2 )) && kind=0  # single process: SIGKILL or SIGTERM of the one process
  (( np == 1 && kind == 4 )) && kind=2
  more=$((RANDOM % 2)) pause=$((RANDOM % 10))
  if (( np == 1 )); then
    "$CLIPSHARD_BINARY" run "$WORK/run.json" > "$WORK/log$round" 2>&1 &
  else
    "${MPIRUN[@]}" -np $np "$CLIPSHARD_BINARY" run "$WORK/run.json" > "$WORK/log$round" 2>&1 &
  fi
  launcher=$!
  # The fault point: `more` shards after the ones already done (0: during startup), plus 0.0-0.9 s.
  for ((t = 0; t < 1200; t++)); do
    (( $(done_count "$WORK/run") >= before + more )) && break
    kill -0 $launcher 2>/dev/null || break
    sleep 0.1
  done
  sleep "0.$pause"
  pids=($(run_pids))
  (( np == 1 || ${#pids[@]} == np )) || sleep 1  # ranks still starting: let them appear
  pids=($(run_pids))
  victims=() signal=KILL what=""
  case $kind in
    0) what="SIGKILL driver"; for p in "${pids[@]}"; do [[ $(rank_of $p) == 0 ]] && victims+=($p); done ;;
    1) what="SIGKILL worker"; w=$((1 + RANDOM % (np - 1)))
       for p in "${pids[@]}"; do [[ $(rank_of $p) == "$w" ]] && victims+=($p); done; what+=" rank $w" ;;
    2) what="SIGTERM all ranks"; signal=TERM; victims=("${pids[@]}") ;;
    3) what="SIGTERM rank"; signal=TERM; w=$((RANDOM % np))
       for p in "${pids[@]}"; do [[ $(rank_of $p) == "$w" ]] && victims+=($p); done; what+=" $w" ;;
    4) what="SIGKILL all ranks"; victims=("${pids[@]}") ;;
  esac
  [[ $signal == TERM ]] && wait_term_handlers "${victims[@]}"
  landed=0
  if (( ${#victims[@]} > 0 )) && kill -0 $launcher 2>/dev/null; then
    kill -$signal "${victims[@]}" 2>/dev/null && landed=1
  fi
  set +e; wait $launcher; status=$?; set -e
  after=$(done_count "$WORK/run")
  (( after >= before )) || fail "round $round: finished shards went from $before to $after"
  finished=0
  [[ -e $WORK/run/summary.json ]] && finished=1
  if (( landed )) && ! (( finished && status == 0 )); then
    injected=$((injected + 1))
    if [[ $signal == KILL ]]; then
      (( status != 0 )) || fail "round $round ($what): job exited 0 after a SIGKILL"
    else
      [[ $status == 75 ]] || { tail -20 "$WORK/log$round"; fail "round $round ($what): exit $status, expected 75"; }
    fi
  else
    after_finish=$((after_finish + 1))
    [[ $status == 0 ]] || { tail -20 "$WORK/log$round"; fail "round $round: exit $status without a fault"; }
  fi
  echo "round $round: np=$np, $what after $((before + more)) shards +0.${pause}s: exit $status, shards $before -> $after/$total$( ((landed)) || echo ' (fault landed after the end)')"
  if (( finished )) && [[ $status == 0 ]]; then
    # The run got to the end within this round: check it, and start a new cycle on a fresh directory.
    same_file "$WORK/ref/output.jsonl" "$WORK/run/output.jsonl"
    same_file "$WORK/ref/errors.jsonl" "$WORK/run/errors.jsonl"
    cycles=$((cycles + 1))
    rm -rf "$WORK/run"
  fi
done

# Resume to the end (a different rank count each time is fine: the plan does not depend on it).
"${MPIRUN[@]}" -np 2 "$CLIPSHARD_BINARY" run "$WORK/run.json" > "$WORK/final.log" 2>&1 || { cat "$WORK/final.log"; fail "final resume failed"; }
same_file "$WORK/ref/output.jsonl" "$WORK/run/output.jsonl"
same_file "$WORK/ref/errors.jsonl" "$WORK/run/errors.jsonl"
state=$("$CLIPSHARD_BINARY" status "$WORK/run")
[[ $state == *'"state":"finished"'* ]] || fail "status after the final run: $state"
stale=$(find "$WORK/run" -name '*.tmp-*' | wc -l)
(( stale == 0 )) || fail "$stale temporary files left in the run directory"
echo "faults injected: $injected (+$after_finish after the end) over $((cycles + 1)) run(s), rows lost: 0; output identical to the uninterrupted run ($((SECONDS - t0)) s)"
(( injected >= rounds / 2 )) || fail "only $injected of $rounds faults landed during the run"
