#!/usr/bin/env bash
# The multi-node layout on a real Slurm: 2 nodes x 2 GPUs (the test cluster's stand-in GPUs, so Slurm
# sets CUDA_VISIBLE_DEVICES as on a GPU cluster; the ranks compute on the CPU). Expects exactly one
# driver (rank 0, first node, no GPU) and 2 workers per node, each with a different GPU of its node,
# and an output.jsonl byte-identical to a plain run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slurm_test_setup
cd "$src" || fail "no source dir $src"
mapfile -t nodes < <(sinfo -h -N -t idle,mix,alloc -o '%N %G' | awk '$2 ~ /gpu:[2-9]/ {print $1}' | sort -u)
((${#nodes[@]} >= 2)) || skip "this cluster has fewer than 2 nodes with 2 GPUs (start it with scripts/slurm-local.sh, CLIPSHARD_SLURM_NODES>=2)"

"$bin" run configs/demo.json --set device=cpu --set output_dir="$work/plain" >"$work/plain.log" 2>&1 ||
  { cat "$work/plain.log"; fail "plain clipshard run failed"; }
# The two logical nodes are one host: Open MPI's shared-memory transport would treat ranks of
# different "nodes" wrongly, so they talk over TCP on loopback (a real cluster needs none of this).
export OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo
submit --nodes 2 --gpus-per-node 2 --cpus-per-worker 1 --job-name multinode -- \
  configs/demo.json --set device=cpu --set output_dir="$work/slurm"
log="$work/logs/multinode-$job.out"
wait_job_state "$job" 300 COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY
show_log "$log"
[[ "$(job_field "$job" JobState)" == COMPLETED ]] || fail "job $job ended $(job_field "$job" JobState)"
nodelist=($(scontrol show hostnames "$(job_field "$job" NodeList)"))
((${#nodelist[@]} == 2)) || fail "job ran on ${#nodelist[@]} nodes"
ranks=$(grep '^clipshard-rank: ' "$log" | sort -t' ' -k3,3n)
echo "$ranks"
[[ $(grep -c . <<<"$ranks") == 5 ]] || fail "expected 5 ranks (1 driver + 2x2 workers)"
grep -qx "clipshard-rank: rank 0 (driver) on ${nodelist[0]}, local rank 0, GPU none" <<<"$ranks" ||
  fail "rank 0 is not the driver on the first node without a GPU"
for n in "${nodelist[@]}"; do
  gpus=$(grep "(worker) on $n," <<<"$ranks" | sed 's/.*GPU //' | sort | tr '\n' ' ')
  [[ "$gpus" == "0 1 " ]] || fail "workers on $n have GPUs '$gpus', expected one each of 0 and 1"
done
[[ $(grep -c "(driver)" <<<"$ranks") == 1 ]] || fail "more than one driver"
cmp "$work/plain/output.jsonl" "$work/slurm/output.jsonl" || fail "output.jsonl differs from the plain run"
note "layout as expected; output.jsonl identical to the plain run"
echo PASS
