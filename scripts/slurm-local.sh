#!/usr/bin/env bash
# A real Slurm cluster on this one machine, for tests and for trying the sbatch scripts (as root).
#
#   scripts/slurm-local.sh start  [STATE_DIR]   start munged, slurmctld, slurmd; print `export SLURM_CONF=...`
#   scripts/slurm-local.sh stop   [STATE_DIR]   stop the daemons started from STATE_DIR, remove STATE_DIR
#   scripts/slurm-local.sh status [STATE_DIR]   exit 0 and print `sinfo` if the cluster answers, else 1
#   scripts/slurm-local.sh env    [STATE_DIR]   print the export line of a running cluster
#
# STATE_DIR defaults to /tmp/clipshard-slurm. Everything lives in it: a private munge key and munged
# socket, slurm.conf, state, spool, logs and pid files; ports are picked free at start, so several
# clusters (parallel tests, several users of one machine) never meet. Nothing in /etc is touched.
# Usage from a script:   eval "$(scripts/slurm-local.sh start "$dir")"   ...   scripts/slurm-local.sh stop "$dir"
#
# Settings (environment):
#   CLIPSHARD_SLURM_NODES  logical nodes (default 2: <host>-n1, <host>-n2, each its own slurmd on its own
#                          port), so that multi-node jobs run; 1 gives one node named `hostname -s`.
#   CLIPSHARD_SLURM_CPUS   CPUs each node claims (default 8; more than the machine has is fine:
#                          SlurmdParameters=config_overrides), so 1 driver + several workers fit.
#   CLIPSHARD_SLURM_GPUS   GPUs each node advertises (default 2). Stand-ins: device nodes in
#                          STATE_DIR/dev that act as /dev/null; a job asking --gpus-per-node gets
#                          CUDA_VISIBLE_DEVICES from Slurm as on a GPU cluster (tests the GPU binding).
#   CLIPSHARD_SLURM_START_TIMEOUT  seconds to wait for the nodes to be idle (default 60).
#   CLIPSHARD_REQUIRE_SLURM=1      turn "cannot start" (exit 77) into a failure (exit 1), e.g. in CI.
# Exit status: 0 ok; 77 Slurm cannot run here (not installed, not root, daemons fail to start: the
# reason is on stderr, so tests can skip visibly); 1 other errors; 2 usage.
set -uo pipefail

cmd=${1:-}
state=${2:-/tmp/clipshard-slurm}
nodes=${CLIPSHARD_SLURM_NODES:-2}
cpus=${CLIPSHARD_SLURM_CPUS:-8}
gpus=${CLIPSHARD_SLURM_GPUS:-2}
start_timeout=${CLIPSHARD_SLURM_START_TIMEOUT:-60}

log() { echo "slurm-local: $*" >&2; }
cannot() {  # Slurm cannot run here: 77 (skip) unless the caller requires it
  log "cannot start Slurm: $*"
  if [[ "${CLIPSHARD_REQUIRE_SLURM:-0}" == 1 ]]; then exit 1; fi
  exit 77
}
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ -n "$cmd" ]] || usage
case "$state" in /*) ;; *) state="$PWD/$state" ;; esac
conf="$state/slurm.conf"

# Sends SIGTERM to the daemon whose pid is in FILE (if it is still that daemon); prints its pid.
term_pidfile() {
  local file=$1 name=$2 pid comm
  [[ -s "$file" ]] || return 0
  pid=$(<"$file")
  rm -f "$file"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  read -r comm 2>/dev/null <"/proc/$pid/comm" || return 0
  [[ "$comm" == "$name"* ]] || return 0
  kill "$pid" 2>/dev/null && echo "$pid"
}

node_names() {
  if (( nodes == 1 )); then hostname -s; else
    for i in $(seq 1 "$nodes"); do echo "$(hostname -s)-n$i"; done
  fi
}

do_stop() {
  local pids=() f p comm
  if [[ -d "$state/run" ]]; then
    for f in "$state"/run/slurmd-*.pid; do [[ -e "$f" ]] && pids+=($(term_pidfile "$f" slurmd)); done
    pids+=($(term_pidfile "$state/run/slurmctld.pid" slurmctld))
  fi
  # slurmstepd processes of jobs still running on these nodes (their environment names STATE_DIR).
  for p in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$p/comm" || continue
    if [[ "$comm" == slurmstepd ]] && grep -qsF "$state/" "$p/environ"; then kill -9 "${p#/proc/}" 2>/dev/null; fi
  done
  for _ in $(seq 100); do  # up to 10 s for the daemons to go, then SIGKILL
    local alive=()
    for p in "${pids[@]}"; do [[ -e /proc/$p ]] && alive+=("$p"); done
    pids=("${alive[@]}")
    ((${#pids[@]} == 0)) && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  if [[ -d "$state/run" ]]; then
    p=$(term_pidfile "$state/run/munged.pid" munged)
    for _ in $(seq 50); do [[ -n "$p" && -e /proc/$p ]] || break; sleep 0.1; done
  fi
  # Only remove a directory this script made (it has our marker).
  if [[ -f "$state/.clipshard-slurm" ]]; then rm -rf "$state"; fi
}

cluster_answers() { SLURM_CONF=$conf timeout 10 sinfo -h -o '%T' >/dev/null 2>&1; }

# TCP ports something listens on (from /proc/net/tcp{,6}: state 0A = LISTEN), one per line.
listening_ports() {
  local f sl local_addr rem st rest
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $f ]] || continue
    while read -r sl local_addr rem st rest; do
      [[ "$st" == 0A ]] && echo $((16#${local_addr##*:}))
    done < <(tail -n +2 "$f")
  done
}

free_port() {  # sets `port` to a TCP port nobody listens on (random, 20000-59999), not used before
  for _ in $(seq 200); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! grep -qx "$port" <<<"$busy_ports" && [[ " $used_ports " != *" $port "* ]]; then
      used_ports+=" $port"; return 0
    fi
  done
  return 1
}

do_start() {
  if [[ $(id -u) != 0 ]]; then cannot "needs root (slurmd runs jobs as any user); run as root or skip"; fi
  local b missing=()
  for b in munged munge unmunge slurmctld slurmd sinfo srun sbatch scontrol; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  ((${#missing[@]} == 0)) || cannot "not installed: ${missing[*]} (scripts/install-deps.sh --with-slurm installs slurm-wlm and munge)"

  if [[ -f "$conf" ]] && cluster_answers; then
    log "already running ($conf)"; echo "export SLURM_CONF=$conf"; return 0
  fi
  if [[ -e "$state" && ! -f "$state/.clipshard-slurm" && -n "$(ls -A "$state" 2>/dev/null)" ]]; then
    log "$state exists and was not made by this script; pick another STATE_DIR"; exit 1
  fi
  do_stop  # leftovers of a cluster that died
  mkdir -p "$state"/{run,log,ctld,munge} && touch "$state/.clipshard-slurm" || exit 1
  chmod 700 "$state/munge"

  # munge: a private key and daemon, on a socket in STATE_DIR.
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none && chmod 400 "$state/munge/munge.key"
  local sock="$state/munge/munge.socket"
  munged --force --socket="$sock" --key-file="$state/munge/munge.key" --pid-file="$state/run/munged.pid" \
    --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed" 2>>"$state/log/munged.log" ||
    { tail -5 "$state/log/munged.log" >&2; do_stop; cannot "munged did not start (log above)"; }
  if ! munge --socket="$sock" -n | unmunge --socket="$sock" 2>&1 | grep -q 'STATUS: *Success'; then
    tail -5 "$state/log/munged.log" >&2; do_stop; cannot "munge credentials do not round-trip"
  fi

  local host ctld_port names i node_lines="" port
  host=$(hostname -s)
  used_ports=""
  busy_ports=$(listening_ports)
  free_port || cannot "no free port"
  ctld_port=$port
  mapfile -t names < <(node_names)
  local gres="" gres_types="" g
  : >"$state/gres.conf"
  if ((gpus > 0)); then  # stand-in devices: character nodes that behave as /dev/null
    mkdir -p "$state/dev"
    for ((g = 0; g < gpus; g++)); do
      mknod "$state/dev/gpu$g" c 1 3 2>/dev/null ||
        { log "mknod refused here: no stand-in GPUs"; gpus=0; break; }
    done
  fi
  if ((gpus > 0)); then
    gres=" Gres=gpu:$gpus"; gres_types="GresTypes=gpu"
    echo "Name=gpu File=$state/dev/gpu[0-$((gpus - 1))]" >"$state/gres.conf"
  fi
  for i in "${!names[@]}"; do
    free_port || cannot "no free port"
    node_lines+="NodeName=${names[$i]} NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=$cpus RealMemory=1000$gres State=UNKNOWN"$'\n'
  done
  cat >"$conf" <<EOF
# Generated by scripts/slurm-local.sh: a single-machine test cluster. Remove with \`slurm-local.sh stop $state\`.
ClusterName=clipshard-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
# Keep finished jobs visible to scontrol for an hour (there is no accounting database).
MinJobAge=3600
KillWait=30
InactiveLimit=0
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool-%n
# Per-node temp dir: Slurm's PMIx plugin puts its client dir there (/tmp would clash between the nodes).
TmpFS=$state/tmp-%n
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd-%n.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
$gres_types
${node_lines}PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

  SLURM_CONF=$conf slurmctld -c -f "$conf" 2>>"$state/log/slurmctld.log" ||
    { tail -20 "$state/log/slurmctld.log" >&2; do_stop; cannot "slurmctld did not start (log above)"; }
  for i in "${names[@]}"; do
    mkdir -p "$state/spool-$i" "$state/tmp-$i"
    SLURM_CONF=$conf slurmd -f "$conf" -N "$i" 2>>"$state/log/slurmd-$i.log" ||
      { tail -20 "$state/log/slurmd-$i.log" >&2; do_stop; cannot "slurmd $i did not start (log above)"; }
  done

  local deadline=$((SECONDS + start_timeout)) idle=0 states=""
  while ((SECONDS < deadline)); do
    states=$(SLURM_CONF=$conf timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null)
    idle=$(grep -c ' idle$' <<<"$states")
    ((idle == ${#names[@]})) && break
    sleep 1
  done
  if ((idle != ${#names[@]})); then
    log "nodes not idle after ${start_timeout}s: $(tr '\n' ' ' <<<"$states")"
    tail -5 "$state"/log/slurmctld.log "$state"/log/slurmd-*.log >&2
    do_stop; cannot "the nodes did not come up (logs above)"
  fi
  log "up: ${#names[@]} node(s) x $cpus CPUs x $gpus stand-in GPUs, partition debug ($conf)"
  echo "export SLURM_CONF=$conf"
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop; log "stopped ($state)" ;;
  status)
    if [[ -f "$conf" ]] && cluster_answers; then SLURM_CONF=$conf sinfo -N; else log "not running ($state)"; exit 1; fi ;;
  env)
    if [[ -f "$conf" ]]; then echo "export SLURM_CONF=$conf"; else log "not running ($state)"; exit 1; fi ;;
  *) usage ;;
esac
