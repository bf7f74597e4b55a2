#!/usr/bin/env bash
# Scale benchmark: holdfast with its stick table pre-filled to N bindings (1,000,000 and
# 10,000,000 by default), side by side with HAProxy in the same run.
#
# For each N in $SIZES:
#   1. prefill   a one-node data dir with N bindings of the learn backend "app"
#                (target/release/prefill: Raft entries of 10,000 binds, then a snapshot)
#   2. disk      du -sb of the data dir / N (and snapshot.bin alone / N)
#   3. restart   `holdfast run` on that data dir (one tokio worker, CPU 0): seconds from
#                exec until /readyz answers 200 and one proxied request succeeds
#   4. memory    (RSS of that node once serving - RSS of the same config on an empty data
#                dir once serving) / N
#   5. load      wrk on CPU 1 (with the nginx backends), 50 keep-alive connections,
#                $DURATION after a $WARMUP warm-up, --latency; no cookie on any request:
#                  hf_insert    holdfast, insert persistence (first contact stores nothing),
#                               its runs taking turns with hap_insert's: HAProxy 2.6,
#                               nbthread 1, CPU 0, cookie insert (stateless,
#                               bench/proxy/haproxy.cfg's setup)
#                  hf_learn     holdfast, learn persistence: every answer carries a new
#                               PHPSESSID, which the node binds through Raft
#   6. join      two more holdfast nodes (join = true, empty data dirs, CPU 0) added with
#                `holdfast ctl members add`: seconds from the add until the new node's
#                /readyz is 200 (it catches up by snapshot)
#   7. learn     three HAProxy processes that are `peers` of each other, stick table
#                learning PHPSESSID from the answers, pre-filled to N with `set table` over
#                the stats socket (HAP_PREFILL_MAX), started beside the three holdfast
#                nodes; then runs taking turns:
#                  hf_learn_3n  hf_learn against node 1 with two followers; CPU of all three
#                  hap_learn    the same load on one HAProxy peer; CPU of all three
#                Loads that are compared take turns run by run, so a minute of host noise
#                falls on both sides rather than on every run of one.
# Figures per load: req/s, p50, p99 (wrk), CPU per request (utime+stime from
# /proc/PID/stat over the run / requests wrk counted) of the node loaded and of its peers.
#
# Usage: bench/scale.sh                         (from anywhere; ~25 min with both sizes)
#        SIZES=1000000 bench/scale.sh           (one size)
# Knobs (env): SIZES="1000000 10000000" DURATION=15s WARMUP=3s CONNS=50 RUNS=1
#   PROXY_CPU=0 LOAD_CPU=1 SKIP_BUILD=0 HAP_PREFILL_MAX=10000000 (largest N for which the
#   HAProxy table is pre-filled) QUIET_WAIT=600 (s to wait while cargo/rustc run)
#   KEEP_DATA=0 (1 keeps the data dirs, GBs at 10M) ADD_TRIES=5 (`ctl members add` runs
#   per joining node) OUT=bench/results/scale-<time>
# Ports: 127.0.0.1:14001-14004 backends, 14N00/14N01/14N10/14N20 holdfast node N
# (learn, insert, admin, peer), 14500 HAProxy insert, 14510-14512 + 14520-14522 HAProxy
# learn peers. It stops exactly the processes it started (by pid), also on failure or
# Ctrl-C, and bounds every wait.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONF="$ROOT/bench/scale"
SIZES=${SIZES:-"1000000 10000000"}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-50}
RUNS=${RUNS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
HAP_PREFILL_MAX=${HAP_PREFILL_MAX:-10000000}
QUIET_WAIT=${QUIET_WAIT:-600}
KEEP_DATA=${KEEP_DATA:-0}
ADD_TRIES=${ADD_TRIES:-5}
OUT=${OUT:-$ROOT/bench/results/scale-$(date -u +%Y%m%dT%H%M%SZ)}
HOLDFAST="$ROOT/target/release/holdfast"
PREFILL="$ROOT/target/release/prefill"
TOKEN="bench-scale-token"
SECRET="bench-scale-secret-0123456789abcdef"
TICK=$(getconf CLK_TCK)

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"

pid_of() { local v="PID_$1"; echo "${!v}"; } # pid_of NAME: the pid start_bg recorded
cleanup() {
    stop_started
    if [[ $KEEP_DATA != 1 ]]; then rm -rf "$OUT/data"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools and ports
need_tools haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl taskset:util-linux python3:python3 socat:socat
for port in 14001 14002 14003 14004 14100 14101 14110 14120 14200 14201 14210 14220 \
    14300 14301 14310 14320 14500 14510 14511 14512 14520 14521 14522; do
    ! ss -Hltn "sport = :$port" | grep -q . || die "127.0.0.1:$port is in use"
done

if [[ $SKIP_BUILD != 1 ]]; then
    wait_quiet
    log "building holdfast and prefill (release)"
    (cd "$ROOT" && timeout 3600 cargo build --release -p holdfast -p holdfast-bench --locked)
fi
[[ -x $HOLDFAST && -x $PREFILL ]] || die "$HOLDFAST or $PREFILL not built"
mkdir -p "$OUT/raw" "$OUT/backends" "$OUT/data"

# ---------------------------------------------------------------- measurements
wait_code() { # wait_code URL CODE SECONDS: until URL answers CODE; fails after SECONDS
    local deadline
    deadline=$(awk -v n="$(now)" -v s="$3" 'BEGIN {printf "%.0f", n + s}')
    while (($(date +%s) < deadline)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "Authorization: Bearer $TOKEN" "$1" 2>/dev/null) == "$2" ]] && return 0
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------- holdfast config
# node_conf ID DATA_DIR JOIN: writes $OUT/nodeID.toml. Node 1 is a cluster of one; nodes
# 2 and 3 start empty with join = true and are added by `ctl members add`.
node_conf() {
    local id=$1 dir=$2 join=$3
    cat >"$OUT/node$id.toml" <<EOF
# Written by bench/scale.sh: node $id.
[node]
id = $id
data_dir = "$dir"

[cluster]
secret = "$SECRET"
peer_listen = "127.0.0.1:14${id}20"
join = $join
max_bindings = 20000000
# openraft keeps min(snapshot_every, 1000) entries before a snapshot. prefill's entries
# hold 10,000 binds each (a live node's hold a flush's worth), so keep only 10 of them:
# the data dir then holds the table (the snapshot), not the prefill's log, and a joining
# node cannot be fed from the log: it catches up by snapshot. At 1M and 10M bindings a
# snapshot is due only after as many operations as bindings held, so it changes nothing
# during the loads.
snapshot_every = 10

[admin]
listen = "127.0.0.1:14${id}10"
token = "$TOKEN"

[[frontend]]
name = "learn"
listen = "127.0.0.1:14${id}00"
default_backend = "app"

[[frontend]]
name = "insert"
listen = "127.0.0.1:14${id}01"
default_backend = "ins"

# What prefill fills: sessions the application names (PHPSESSID), learned from its
# Set-Cookie. Like HAProxy's stick-table learning below; no health check.
[[backend]]
name = "app"
persistence = "learn"
cookie = "PHPSESSID"
ttl = "1h"
server = [
  { name = "s1", addr = "127.0.0.1:14003" },
  { name = "s2", addr = "127.0.0.1:14004" },
]

# holdfast's signed cookie, like HAProxy's "cookie SRV insert"; first contact stores
# nothing (the cookie promises the server; the binding is made when the client returns).
[[backend]]
name = "ins"
persistence = "insert"
ttl = "1h"
server = [
  { name = "s1", addr = "127.0.0.1:14001" },
  { name = "s2", addr = "127.0.0.1:14002" },
]
EOF
    "$HOLDFAST" check --config "$OUT/node$id.toml" >/dev/null
}

# start_node ID: starts `holdfast run` for nodeID.toml on PROXY_CPU; pid in PID_node<ID>
start_node() {
    start_bg "node$1" "$PROXY_CPU" "$OUT/node$1.log" env HOLDFAST_WORKER_THREADS=1 \
        "$HOLDFAST" run --config "$OUT/node$1.toml"
}

# serve_node ID: starts node ID and waits until it serves: /readyz 200, then one proxied
# request through its learn frontend. Sets SERVE_S (seconds from exec) and SERVE_RSS
# (KiB, 2 s after serving).
serve_node() {
    local id=$1 t0 pid
    t0=$(now)
    start_node "$id"
    pid=$(pid_of "node$id")
    wait_code "http://127.0.0.1:14${id}10/readyz" 200 300 ||
        die "node $id not ready after 300 s (log: $OUT/node$id.log)"
    wait_code "http://127.0.0.1:14${id}00/" 200 30 || die "node $id does not proxy"
    SERVE_S=$(since "$t0")
    sleep 2
    SERVE_RSS=$(rss_kib "$pid")
}

log_problems() { # log_problems FILE: WARN/ERROR lines in a holdfast log (colours removed)
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -cE ' (WARN|ERROR) ' || true
}
log_kinds() { # log_kinds FILE: its distinct WARN/ERROR messages, counted
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E ' (WARN|ERROR) ' |
        sed -E 's/^[^ ]+ +//; s/[0-9]+(\.[0-9]+)?/N/g' | sort | uniq -c | sort -rn | head -20 || true
}
bindings() { # bindings ID: holdfast_table_bindings summed over backends, from node ID's /metrics
    curl -s -m 5 "http://127.0.0.1:14${1}10/metrics" |
        awk '/^holdfast_table_bindings[{ ]/ {s += $NF} END {printf "%d", s}'
}

# ---------------------------------------------------------------- loads
CSV="$OUT/runs.csv"
echo "size,target,run,req_s,p50_ms,p99_ms,requests,non2xx,sock_errors,us_req_main,us_req_peers,us_req_total,rss_main_kib,other_pct" >"$CSV"

wrk_run() { # wrk_run URL DURATION OUTFILE: wrk on LOAD_CPU, bounded
    local secs=${2%s}
    timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 "-c$CONNS" "-d$2" --latency "$1" >"$3" 2>&1 || die "wrk failed: $(cat "$3")"
}

# warm SIZE TARGET URL: a warm-up load, not measured.
warm() { wrk_run "$3" "$WARMUP" "$OUT/raw/$1-$2-warmup.txt"; }

# measure SIZE TARGET URL MAIN_PID [PEER_PIDS...]: warm-up, then RUNS measured runs.
measure() {
    local size=$1 target=$2 url=$3 run
    shift 3
    warm "$size" "$target" "$url"
    for run in $(seq "$RUNS"); do measure_run "$size" "$target" "$run" "$url" "$@"; done
}

# alternate SIZE "TARGET URL MAIN_PID [PEER_PIDS...]" "TARGET URL MAIN_PID [PEER_PIDS...]":
# both warmed up, then their RUNS runs taking turns, so a minute of host noise falls on
# both rather than on every run of one.
alternate() {
    local size=$1 run
    local -a a b
    read -r -a a <<<"$2"
    read -r -a b <<<"$3"
    warm "$size" "${a[0]}" "${a[1]}"
    warm "$size" "${b[0]}" "${b[1]}"
    for run in $(seq "$RUNS"); do
        measure_run "$size" "${a[0]}" "$run" "${a[@]:1}"
        measure_run "$size" "${b[0]}" "$run" "${b[@]:1}"
    done
}

# measure_run SIZE TARGET RUN URL MAIN_PID [PEER_PIDS...]: one measured run.
measure_run() {
    local size=$1 target=$2 run=$3 url=$4 main=$5
    shift 5
    local peers=("$@") raw
    {
        [[ -z $(others) ]] || wait_quiet
        raw="$OUT/raw/$size-$target-$run.txt"
        local m0 p0 b0 c0 c0t l0 l0t m1 p1 b1 c1 c1t l1 l1t
        m0=$(cpu_ticks "$main")
        p0=$( ((${#peers[@]})) && cpu_ticks "${peers[@]}" || echo 0)
        b0=$(cpu_ticks "$PID_backends")
        read -r c0 c0t < <(cpu_busy "$PROXY_CPU")
        read -r l0 l0t < <(cpu_busy "$LOAD_CPU")
        local TIMEFORMAT='%U %S' t
        t=$({ time wrk_run "$url" "$DURATION" "$raw"; } 2>&1)
        m1=$(cpu_ticks "$main")
        p1=$( ((${#peers[@]})) && cpu_ticks "${peers[@]}" || echo 0)
        b1=$(cpu_ticks "$PID_backends")
        read -r c1 c1t < <(cpu_busy "$PROXY_CPU")
        read -r l1 l1t < <(cpu_busy "$LOAD_CPU")
        local reqs rps p50 p99 non2xx sockerr
        reqs=$(awk '/requests in/ {print $1}' "$raw")
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$raw")
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$raw")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$raw")")
        non2xx=$(awk '/Non-2xx/ {print $NF}' "$raw")
        sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$raw")
        [[ -n $reqs && -n $rps ]] || die "cannot read wrk output $raw"
        # other_pct: busy time of the two CPUs not explained by the proxies, the backends
        # and wrk, in % of one core (another engineer's build would show here)
        local line
        line=$(awk -v s="$size" -v t="$target" -v r="$run" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
            -v reqs="$reqs" -v n2="${non2xx:-0}" -v se="${sockerr:-0}" -v tick="$TICK" \
            -v m=$((m1 - m0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) -v wc="$t" -v rss="$(rss_kib "$main")" \
            -v c=$((c1 - c0)) -v ct=$((c1t - c0t)) -v l=$((l1 - l0)) -v lt=$((l1t - l0t)) \
            -v secs="${DURATION%s}" 'BEGIN {
                split(wc, w, " "); wrk = w[1] + w[2]
                busy = 100 * (c / (ct > 0 ? ct : 1) + l / (lt > 0 ? lt : 1))
                other = busy - 100 * ((m + p + b) / tick + wrk) / secs
                if (other < 0) other = 0
                printf "%s,%s,%s,%.0f,%s,%s,%s,%s,%s,%.1f,%.1f,%.1f,%s,%.0f\n", s, t, r, rps, p50, p99,
                    reqs, n2, se, 1e6 * m / tick / reqs, 1e6 * p / tick / reqs,
                    1e6 * (m + p) / tick / reqs, rss, other }')
        echo "$line" >>"$CSV"
        log "N=$size $target: $(cut -d, -f4 <<<"$line") req/s, p50 $p50 ms, p99 $p99 ms," \
            "CPU µs/req $(cut -d, -f10 <<<"$line") + peers $(cut -d, -f11 <<<"$line")," \
            "non-2xx ${non2xx:-0}, socket errors ${sockerr:-0}, other load $(cut -d, -f14 <<<"$line") %"
    }
}

# ---------------------------------------------------------------- environment
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "haproxy: $(haproxy -v | head -1)"
    echo "nginx: $(nginx -v 2>&1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "holdfast: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- proxy table peer-proto Cargo.lock || echo ' +uncommitted changes'), release, HOLDFAST_WORKER_THREADS=1"
    echo "load: wrk -t1 -c$CONNS -d$DURATION --latency after a $WARMUP warm-up, $RUNS run(s); proxies (all holdfast nodes, all HAProxy processes) on CPU $PROXY_CPU, wrk and backends on CPU $LOAD_CPU"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- backends, HAProxy insert
start_bg backends "$LOAD_CPU" "$OUT/backends.log" \
    nginx -p "$OUT/backends/" -c "$CONF/backends.nginx.conf" -e stderr
start_bg hapins "$PROXY_CPU" "$OUT/haproxy-insert.log" haproxy -db -f "$CONF/haproxy-insert.cfg"
for p in 14001 14002 14003 14004 14500; do
    wait_code "http://127.0.0.1:$p/" 200 10 || die "127.0.0.1:$p does not answer"
done
curl -si http://127.0.0.1:14003/ | grep -qE '^Set-Cookie: PHPSESSID=[0-9a-f]{32};' ||
    die "learn backend sets no 32-hex PHPSESSID"

# ---------------------------------------------------------------- empty baseline
log "baseline: the same config on an empty data dir"
node_conf 1 "$OUT/data/empty" false
serve_node 1
EMPTY_S=$SERVE_S
EMPTY_RSS=$SERVE_RSS
stop_one "$PID_node1"
mv "$OUT/node1.log" "$OUT/node1-empty.log"
log "baseline: serving after $EMPTY_S s, RSS $EMPTY_RSS KiB"
echo "empty_serve_s=$EMPTY_S empty_rss_kib=$EMPTY_RSS" >"$OUT/empty.txt"
rm -rf "$OUT/data/empty"

echo "size,prefill_s,prefill_rate,disk_bytes,disk_b_per,snap_b_per,log_bytes,restart_s,rss_kib,rss_b_per,hap_prefill_s,hap_prefilled,join2_s,join3_s,rss_after_kib,rss_follower_kib,warn_error_lines,hap_rss_b_per,bindings_after" >"$OUT/scale.csv"

# ---------------------------------------------------------------- per size
for N in $SIZES; do
    D="$OUT/data/n$N"
    log "===== N=$N"

    # 1. prefill
    node_conf 1 "$D/node1" false
    wait_quiet
    t0=$(now)
    timeout 1800 "$PREFILL" --config "$OUT/node1.toml" --bindings "$N" --backend app \
        --servers s1,s2 --ttl-secs 3600 >"$OUT/prefill-$N.txt" 2>"$OUT/prefill-$N.log" ||
        die "prefill failed: $(tail -5 "$OUT/prefill-$N.log")"
    PREFILL_S=$(since "$t0")
    cat "$OUT/prefill-$N.txt" >&2
    PREFILL_RATE=$(sed -n 's/.*(\([0-9]*\) bindings\/s).*/\1/p' "$OUT/prefill-$N.txt")
    read -r _ K0 S0 K1 S1 < <(grep '^sample:' "$OUT/prefill-$N.txt")

    # 2. disk
    DISK=$(du -sb "$D/node1" | cut -f1)
    SNAP=$(stat -c %s "$D/node1/snapshot.bin")
    LOGB=$(stat -c %s "$D/node1/raft-log.redb")
    log "disk: $DISK bytes ($(ls -l "$D/node1" | tail -n +2 | awk '{printf "%s %s; ", $NF, $5}'))"

    # 3. restart on the pre-filled data dir, 4. memory
    serve_node 1
    RESTART_S=$SERVE_S
    RSS=$SERVE_RSS
    log "restart: serving after $RESTART_S s, RSS $RSS KiB (empty: $EMPTY_RSS)"
    # the pre-filled sessions route: sample keys to the servers prefill gave them
    for kv in "$K0 $S0" "$K1 $S1"; do
        read -r k s <<<"$kv"
        got=$(curl -s -m 5 -H "Cookie: PHPSESSID=$k" http://127.0.0.1:14100/)
        [[ $got == "$s" ]] || die "pre-filled session $k went to '$got', not $s"
    done
    {
        echo "== N=$N holdfast learn: a new session, then its cookie 4 times (one server)"
        c=$(curl -si http://127.0.0.1:14100/ | tr -d '\r' | sed -n 's/^set-cookie: \(PHPSESSID=[^;]*\).*/\1/Ip')
        sleep 0.5
        for _ in 1 2 3 4; do curl -s -H "Cookie: $c" http://127.0.0.1:14100/; done | paste -sd' '
        echo "== N=$N holdfast insert: new clients (HFSID cookie)"
        for _ in 1 2; do curl -si http://127.0.0.1:14101/ | grep -iE '^set-cookie|^s[12]$' | tr -d '\r' | cut -c1-60 | paste -sd' '; done
    } >>"$OUT/sanity.txt"

    # 5. load on one node
    alternate "$N" "hf_insert http://127.0.0.1:14101/ $PID_node1" \
        "hap_insert http://127.0.0.1:14500/ $PID_hapins"
    measure "$N" hf_learn http://127.0.0.1:14100/ "$PID_node1"

    # 6. two nodes join by snapshot
    JOIN=()
    for id in 2 3; do
        node_conf "$id" "$D/node$id" true
        start_node "$id"
        wait_code "http://127.0.0.1:14${id}10/healthz" 200 30 || die "node $id does not start"
        # `ctl members add` adds a learner, waits (up to 25 s) for it to catch up, then makes
        # it a voter; if it answers an error while the node is not ready, it is run again (an
        # operator's retry), at most ADD_TRIES times. The figure is from the first add to
        # /readyz 200, retries included; join.txt says how many adds it took.
        t0=$(now)
        tries=0
        while :; do
            tries=$((tries + 1))
            rc=0
            timeout 120 "$HOLDFAST" ctl --admin http://127.0.0.1:14110 --token "$TOKEN" \
                members add "$id" "127.0.0.1:14${id}20" >>"$OUT/join-$N-$id.txt" 2>&1 || rc=$?
            if ((rc == 0)); then
                wait_code "http://127.0.0.1:14${id}10/readyz" 200 120 ||
                    die "node $id not ready 120 s after members add succeeded (log: $OUT/node$id.log)"
                break
            fi
            log "ctl members add $id (try $tries) exited $rc: $(tail -c 300 "$OUT/join-$N-$id.txt")"
            wait_code "http://127.0.0.1:14${id}10/readyz" 200 1 && break
            ((tries < ADD_TRIES)) || die "node $id not added after $tries tries (log: $OUT/node$id.log)"
        done
        JOIN+=("$(since "$t0")")
        # caught up by snapshot: it received the leader's snapshot.bin (else by log)
        how="by log (no snapshot.bin)"
        [[ -f $D/node$id/snapshot.bin ]] && how="by snapshot ($(stat -c %s "$D/node$id/snapshot.bin") bytes)"
        log "node $id joined (ready) after ${JOIN[-1]} s, caught up $how"
        echo "N=$N node $id: ready ${JOIN[-1]} s after the first members add ($tries tries), caught up $how" >>"$OUT/join.txt"
    done
    sleep 2
    RSS_F=$(rss_kib "$PID_node2")

    # 7. HAProxy learn on three peers, pre-filled, beside the three holdfast nodes (idle
    #    while the other side is loaded), so that the two learn loads can take turns
    for i in 1 2 3; do
        start_bg "hap$i" "$PROXY_CPU" "$OUT/haproxy-learn-$i.log" env HAP_FE=$((14509 + i)) \
            HAP_SOCK="$OUT/hap$i.sock" haproxy -db -L "hap$i" -f "$CONF/haproxy-learn.cfg"
    done
    for i in 1 2 3; do
        wait_code "http://127.0.0.1:$((14509 + i))/" 200 10 || die "HAProxy hap$i does not answer"
    done
    HAP_S="-"
    HAP_FILLED="no"
    HAP_RSS0=$(rss_kib "$PID_hap1")
    if ((N <= HAP_PREFILL_MAX)); then
        t0=$(now)
        timeout 900 taskset -c "$LOAD_CPU" python3 "$CONF/hap-prefill.py" "$OUT/hap1.sock" app "$N" 1,2 \
            >"$OUT/hap-prefill-$N.txt" 2>&1 || die "HAProxy prefill failed: $(cat "$OUT/hap-prefill-$N.txt")"
        cat "$OUT/hap-prefill-$N.txt" >&2
        # wait (bounded) until both peers hold the table too
        for i in 2 3; do
            for _ in $(seq 600); do
                u=$(echo "show table" | timeout 10 socat - "UNIX-CONNECT:$OUT/hap$i.sock" | sed -n 's/^# table: app,.*used:\([0-9]*\).*/\1/p')
                ((${u:-0} >= N)) && break
                sleep 1
            done
            log "HAProxy hap$i holds ${u:-0} entries"
        done
        HAP_S=$(since "$t0")
        HAP_FILLED="yes"
        k=$(python3 -c 'print("%032x" % ((1 * 0x9E3779B97F4A7C15F39CC0605CEDC835) & ((1 << 128) - 1)))')
        got=$(curl -s -m 5 -H "Cookie: PHPSESSID=$k" http://127.0.0.1:14510/)
        [[ $got == s2 ]] || die "HAProxy pre-filled session $k went to '$got', not s2"
    fi
    {
        echo "== N=$N HAProxy learn: a new session on hap1, then its cookie on hap1 and hap2"
        c=$(curl -si http://127.0.0.1:14510/ | tr -d '\r' | sed -n 's/^set-cookie: \(PHPSESSID=[^;]*\).*/\1/Ip')
        sleep 0.5
        for p in 14510 14510 14511 14511; do curl -s -H "Cookie: $c" "http://127.0.0.1:$p/"; done | paste -sd' '
    } >>"$OUT/sanity.txt"
    alternate "$N" "hf_learn_3n http://127.0.0.1:14100/ $PID_node1 $PID_node2 $PID_node3" \
        "hap_learn http://127.0.0.1:14510/ $PID_hap1 $PID_hap2 $PID_hap3"
    RSS_AFTER=$(rss_kib "$PID_node1")
    BIND_AFTER=$(bindings 1)
    log "node 1 after the loads: $BIND_AFTER bindings, RSS $RSS_AFTER KiB; follower: RSS $RSS_F KiB after joining"
    WARN=0
    for id in 1 2 3; do
        cp "$OUT/node$id.log" "$OUT/node$id-$N.log"
        WARN=$((WARN + $(log_problems "$OUT/node$id.log")))
        { echo "== N=$N node $id"; log_kinds "$OUT/node$id.log"; } >>"$OUT/warnings.txt"
    done
    for id in 3 2 1; do stop_one "$(pid_of "node$id")"; done
    rm -f "$OUT"/node[123].log
    [[ $KEEP_DATA == 1 ]] || rm -rf "$D"

    HAP_RSS=$(for i in 1 2 3; do rss_kib "$(pid_of "hap$i")"; done | paste -sd/)
    # RSS per entry of the loaded HAProxy (after the load: N pre-filled + the load's)
    HAP_ENTRIES=$(echo "show table" | timeout 10 socat - "UNIX-CONNECT:$OUT/hap1.sock" | sed -n 's/^# table: app,.*used:\([0-9]*\).*/\1/p')
    HAP_B_PER=$(awk -v a="$HAP_RSS0" -v b="${HAP_RSS%%/*}" -v n="${HAP_ENTRIES:-0}" 'BEGIN {printf "%.1f", n ? (b - a) * 1024 / n : 0}')
    echo "N=$N hap1/hap2/hap3 RSS KiB after the load: $HAP_RSS (hap1 before prefill: $HAP_RSS0); hap1 table entries: $HAP_ENTRIES; RSS per entry: $HAP_B_PER B" >>"$OUT/haproxy-rss.txt"
    for i in 1 2 3; do stop_one "$(pid_of "hap$i")"; done

    awk -v n="$N" -v ps="$PREFILL_S" -v pr="$PREFILL_RATE" -v d="$DISK" -v sn="$SNAP" -v lb="$LOGB" \
        -v rs="$RESTART_S" -v rss="$RSS" -v e="$EMPTY_RSS" -v hs="$HAP_S" -v hf="$HAP_FILLED" \
        -v j2="${JOIN[0]}" -v j3="${JOIN[1]}" -v ra="$RSS_AFTER" -v rf="$RSS_F" -v w="$WARN" -v hb="$HAP_B_PER" -v ba="$BIND_AFTER" 'BEGIN {
            printf "%s,%s,%s,%s,%.1f,%.1f,%s,%s,%s,%.1f,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", n, ps, pr, d, d / n, sn / n,
                lb, rs, rss, (rss - e) * 1024 / n, hs, hf, j2, j3, ra, rf, w, hb, ba }' >>"$OUT/scale.csv"
done

# ---------------------------------------------------------------- summary
# One column per size, each load's figures the medians of its RUNS runs; ratios to
# HAProxy in the same run. hf_learn_3n (node + 2 followers)
# is compared with hap_learn (hap1 + 2 peers).
awk -F, -v sizes="$SIZES" '
    FNR == 1 { f++; next }
    f == 1 { R[$1, $2] = R[$1, $2] " " $4; P50[$1, $2] = P50[$1, $2] " " $5; P99[$1, $2] = P99[$1, $2] " " $6
             U[$1, $2] = U[$1, $2] " " $10; UP[$1, $2] = UP[$1, $2] " " $11; UT[$1, $2] = UT[$1, $2] " " $12
             E[$1, $2] += $8 + $9 }
    f == 2 { for (i = 1; i <= NF; i++) S[$1, i] = $i }
    function median(s,   a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function row(label, fmt, key, idx,   i, line) {
        line = "| " label
        for (i = 1; i <= ns; i++) line = line " | " sprintf(fmt, S[Z[i], idx])
        print line " |"
    }
    END {
        # Each figure is its own median over the runs of a load.
        for (k in R) { R[k] = median(R[k]); P50[k] = median(P50[k]); P99[k] = median(P99[k])
                       U[k] = median(U[k]); UP[k] = median(UP[k]); UT[k] = median(UT[k]) }
        ns = split(sizes, Z, " ")
        hdr = "| figure"; sep = "|---"
        for (i = 1; i <= ns; i++) { hdr = hdr " | N = " Z[i]; sep = sep "|---:" }
        print hdr " |"; print sep "|"
        row("prefill (s, incl. snapshot)", "%s", "", 2)
        row("prefill rate (bindings/s)", "%s", "", 3)
        row("disk per binding (B, data dir)", "%s", "", 5)
        row("snapshot.bin per binding (B)", "%s", "", 6)
        row("restart until serving (s)", "%s", "", 8)
        row("RSS per binding (B, over empty)", "%s", "", 10)
        row("join by snapshot, node 2 (s)", "%s", "", 13)
        row("join by snapshot, node 3 (s)", "%s", "", 14)
        row("HAProxy table pre-filled to N", "%s", "", 12)
        row("HAProxy prefill + peers sync (s)", "%s", "", 11)
        row("HAProxy RSS per entry (B, hap1)", "%s", "", 18)
        row("holdfast bindings after loads (node 1)", "%s", "", 19)
        row("holdfast RSS after loads (KiB, node 1)", "%s", "", 15)
        row("holdfast RSS of a joined follower (KiB)", "%s", "", 16)
        row("holdfast WARN/ERROR log lines", "%s", "", 17)
        n = split("hf_insert hap_insert hf_learn hf_learn_3n hap_learn", T, " ")
        for (k = 1; k <= n; k++) {
            t = T[k]
            line1 = "| " t " req/s"; line2 = "| " t " p50 / p99 ms"; line3 = "| " t " CPU µs/req (loaded + peers)"
            for (i = 1; i <= ns; i++) {
                z = Z[i]
                line1 = line1 " | " R[z, t] (E[z, t] ? " (" E[z, t] " errors)" : "")
                line2 = line2 " | " P50[z, t] " / " P99[z, t]
                line3 = line3 " | " UT[z, t] (UP[z, t] > 0 ? " (" U[z, t] " + " UP[z, t] ")" : "")
            }
            print line1 " |"; print line2 " |"; print line3 " |"
        }
        line1 = "| p99 ratio insert (hf / hap)"; line2 = "| p99 ratio learn 3 nodes (hf_learn_3n / hap_learn)"
        line3 = "| CPU ratio insert (hf / hap)"; line4 = "| CPU ratio learn (3 holdfast / 3 HAProxy)"
        line5 = "| p99 ratio learn 1 node (hf_learn / hap_learn)"
        for (i = 1; i <= ns; i++) {
            z = Z[i]
            line1 = line1 " | " sprintf("%.2f", P99[z, "hf_insert"] / P99[z, "hap_insert"])
            line2 = line2 " | " sprintf("%.2f", P99[z, "hf_learn_3n"] / P99[z, "hap_learn"])
            line5 = line5 " | " sprintf("%.2f", P99[z, "hf_learn"] / P99[z, "hap_learn"])
            line3 = line3 " | " sprintf("%.2f", U[z, "hf_insert"] / U[z, "hap_insert"])
            line4 = line4 " | " sprintf("%.2f", UT[z, "hf_learn_3n"] / UT[z, "hap_learn"])
        }
        print line1 " |"; print line5 " |"; print line2 " |"; print line3 " |"; print line4 " |"
    }' "$CSV" "$OUT/scale.csv" >"$OUT/table.md"

{
    echo
    echo "Scale benchmark (empty-data-dir node: serving after $EMPTY_S s, RSS $EMPTY_RSS KiB)"
    cat "$OUT/env.txt"
    echo
    cat "$OUT/table.md"
    echo
    echo "runs: $OUT/runs.csv; sizes: $OUT/scale.csv; wrk output: $OUT/raw/; logs: $OUT/*.log"
}
