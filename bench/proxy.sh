#!/usr/bin/env bash
# Proxy benchmark: holdfast vs HAProxy vs nginx, the same load in the same run.
#
# One single-process nginx serves both backends (127.0.0.1:9001 "s1", :9002 "s2"); three
# proxies sit in front of them: HAProxy 2.6 (nbthread 1, cookie insert) on :8080, nginx
# (1 worker, round robin) on :8081, holdfast (one tokio worker thread, insert
# persistence) on :8082. wrk drives each in turn: keep-alive, 50 connections, 3-byte
# responses. Proxy on CPU 0; wrk and the backends on CPU 1 (taskset). For each target it
# prints req/s, p50, p99, the proxy's RSS after the run and the proxy's CPU time per
# request (utime+stime from /proc/PID/stat over the run / requests served), with ratios to
# the matching HAProxy case.
#
# Targets (as in the HAProxy anchor, ../shared/anchors/RESULTS.md):
#   haproxy      new clients: no cookie, HAProxy inserts Set-Cookie SRV=... every time
#   haproxy_ck   every request carries Cookie: SRV=s1 (persistence lookup, no insert)
#   holdfast     new clients: no cookie, holdfast binds a new session (queued into the
#                replicated table) and sets its signed HFSID cookie every time
#   holdfast_ck  every request carries one valid HFSID cookie (taken from a first
#                response): MAC check, table lookup, a queued touch
#   nginx        plain round robin (open-source nginx has no cookie persistence)
#
# Usage: bench/proxy.sh            (from anywhere; ~4 min when the machine is quiet)
# Knobs (env): RUNS=2 DURATION=15s WARMUP=3s CONNS=50 PROXY_CPU=0 LOAD_CPU=1
#   QUIET_WAIT=1200 (s to wait for a quiet machine) QUIET_POLL=20 FOREIGN_MAX=25 (% of a
#   core used by other processes during a run above which the run is repeated)
#   MAX_RETRY=2 SKIP_BUILD=0 TARGETS="haproxy haproxy_ck holdfast_ck holdfast nginx"
#   OUT=bench/results/proxy-<time>
# It stops exactly the processes it started (by pid), also on failure or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONF="$ROOT/bench/proxy"
RUNS=${RUNS:-2}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-50}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
QUIET_WAIT=${QUIET_WAIT:-1200}
QUIET_POLL=${QUIET_POLL:-20}
FOREIGN_MAX=${FOREIGN_MAX:-25}
MAX_RETRY=${MAX_RETRY:-2}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGETS=${TARGETS:-"haproxy haproxy_ck holdfast_ck holdfast nginx"}
OUT=${OUT:-$ROOT/bench/results/proxy-$(date -u +%Y%m%dT%H%M%SZ)}
HOLDFAST="$ROOT/target/release/holdfast"
TICK=$(getconf CLK_TCK)

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
cleanup() { stop_started; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need_tools haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl taskset:util-linux

for port in 8080 8081 8082 9001 9002 8412 8422; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        die "127.0.0.1:$port is in use; this benchmark needs 8080-8082, 9001-9002, 8412, 8422"
    fi
done

if [[ $SKIP_BUILD != 1 ]]; then
    log "building holdfast (release)"
    (cd "$ROOT" && timeout 3600 cargo build --release -p holdfast --locked)
fi
[[ -x $HOLDFAST ]] || die "$HOLDFAST not built"

mkdir -p "$OUT/raw" "$OUT/backends" "$OUT/nginx-proxy" "$OUT/holdfast"

# ---------------------------------------------------------------- quiet machine
# ---------------------------------------------------------------- measurements
# ---------------------------------------------------------------- servers

log "starting backends, HAProxy, nginx and holdfast (output in $OUT)"
start_bg backends "$LOAD_CPU" "$OUT/backends.log" \
    nginx -p "$OUT/backends/" -c "$CONF/backends.nginx.conf" -e stderr
start_bg haproxy "$PROXY_CPU" "$OUT/haproxy.log" haproxy -db -f "$CONF/haproxy.cfg"
start_bg nginx "$PROXY_CPU" "$OUT/nginx-proxy.log" \
    nginx -p "$OUT/nginx-proxy/" -c "$CONF/proxy.nginx.conf" -e stderr

cat >"$OUT/holdfast.toml" <<EOF
# Written by bench/proxy.sh: a cluster of one, the HAProxy anchor's setup.
[node]
id = 1
data_dir = "$OUT/holdfast/data"

[cluster]
secret = "bench-proxy-secret-0123456789abcdef"
peer_listen = "127.0.0.1:8422"

[admin]
listen = "127.0.0.1:8412"

[[frontend]]
name = "fe"
listen = "127.0.0.1:8082"
default_backend = "be"

# Like "cookie SRV insert" with no "check" on the servers: no health check.
[[backend]]
name = "be"
persistence = "insert"
balance = "roundrobin"
server = [
  { name = "s1", addr = "127.0.0.1:9001" },
  { name = "s2", addr = "127.0.0.1:9002" },
]
EOF
"$HOLDFAST" check --config "$OUT/holdfast.toml" >/dev/null
rm -rf "$OUT/holdfast/data"
start_bg holdfast "$PROXY_CPU" "$OUT/holdfast.log" env HOLDFAST_WORKER_THREADS=1 \
    "$HOLDFAST" run --config "$OUT/holdfast.toml"

wait_url http://127.0.0.1:9001/
wait_url http://127.0.0.1:9002/
wait_url http://127.0.0.1:8080/
wait_url http://127.0.0.1:8081/
wait_url http://127.0.0.1:8082/
PID_nginx_worker=$(pgrep -P "$PID_nginx" | head -1)
[[ -n $PID_nginx_worker ]] || die "no nginx proxy worker"
PID_backends_check=$(pgrep -P "$PID_backends" || true)
[[ -z $PID_backends_check ]] || die "backends nginx is not single-process"

# ---------------------------------------------------------------- sanity
{
    echo "== HAProxy, no cookie (expect s1/s2 alternating, Set-Cookie SRV=...)"
    for _ in 1 2 3 4; do curl -si http://127.0.0.1:8080/ | grep -iE '^set-cookie|^s[12]$' | tr -d '\r' | paste -sd' '; done
    echo "== HAProxy, Cookie: SRV=s2 (expect s2 only, no Set-Cookie)"
    for _ in 1 2 3; do curl -si -H 'Cookie: SRV=s2' http://127.0.0.1:8080/ | grep -iE '^set-cookie|^s[12]$' | tr -d '\r' | paste -sd' '; done
    echo "== nginx (expect s1/s2 alternating)"
    for _ in 1 2 3 4; do curl -s http://127.0.0.1:8081/; done | paste -sd' '
    echo "== holdfast, no cookie (expect s1/s2 alternating, Set-Cookie HFSID=...)"
    for _ in 1 2 3 4; do curl -si http://127.0.0.1:8082/ | grep -iE '^set-cookie|^s[12]$' | tr -d '\r' | paste -sd' '; done
} >"$OUT/sanity.txt"
HF_COOKIE=$(curl -si http://127.0.0.1:8082/ | tr -d '\r' |
    sed -n 's/^[Ss]et-[Cc]ookie: \(HFSID=[^;]*\).*/\1/p' | head -1)
[[ -n $HF_COOKIE ]] || die "holdfast set no HFSID cookie"
HF_SERVER=$(curl -s -H "Cookie: $HF_COOKIE" http://127.0.0.1:8082/)
{
    echo "== holdfast, Cookie: $HF_COOKIE (expect $HF_SERVER only, no Set-Cookie)"
    for _ in 1 2 3 4 5 6; do curl -si -H "Cookie: $HF_COOKIE" http://127.0.0.1:8082/ | grep -iE '^set-cookie|^s[12]$' | tr -d '\r' | paste -sd' '; done
} >>"$OUT/sanity.txt"
cat "$OUT/sanity.txt" >&2
grep -qx 's1' <(curl -s http://127.0.0.1:9001/) || die "backend 9001 does not answer s1"
n=$(for _ in 1 2 3 4 5 6; do curl -s -H "Cookie: $HF_COOKIE" http://127.0.0.1:8082/; done | sort -u | wc -l)
((n == 1)) || die "holdfast cookie persistence does not hold"
grep -q 'HFSID=' "$OUT/sanity.txt" || die "holdfast sets no cookie"

# ---------------------------------------------------------------- environment
wait_quiet
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "haproxy: $(haproxy -v | head -1)"
    echo "nginx: $(nginx -v 2>&1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "holdfast: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- proxy table peer-proto Cargo.lock || echo ' +uncommitted changes'), release, HOLDFAST_WORKER_THREADS=1"
    echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
    echo "load: wrk -t1 -c$CONNS -d$DURATION --latency, $RUNS runs per target after a $WARMUP warm-up; proxy on CPU $PROXY_CPU, wrk and backends on CPU $LOAD_CPU"
    echo "quiet before measuring: $QUIET"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ---------------------------------------------------------------- runs
echo "target,run,attempt,req_s,p50_ms,p99_ms,requests,non2xx,sock_errors,proxy_cpu_s,cpu_us_per_req,rss_kib,proxy_cpu_pct,wrk_cpu_pct,backend_cpu_pct,machine_pct,other_pct,others_running,user_us_per_req,sys_us_per_req" >"$OUT/runs.csv"

url_of() { case $1 in haproxy*) echo http://127.0.0.1:8080/ ;; nginx) echo http://127.0.0.1:8081/ ;; holdfast*) echo http://127.0.0.1:8082/ ;; esac; }
pid_of() { case $1 in haproxy*) echo "$PID_haproxy" ;; nginx) echo "$PID_nginx_worker" ;; holdfast*) echo "$PID_holdfast" ;; esac; }
hdr_of() { case $1 in haproxy_ck) echo "Cookie: SRV=s1" ;; holdfast_ck) echo "Cookie: $HF_COOKIE" ;; *) echo "" ;; esac; }

wrk_run() { # wrk_run TARGET DURATION OUTFILE: runs wrk on LOAD_CPU; CPU seconds of wrk in WRK_CPU
    local target=$1 dur=$2 outf=$3 hdr url secs
    hdr=$(hdr_of "$target")
    url=$(url_of "$target")
    secs=${dur%s}
    local args=(-t1 "-c$CONNS" "-d$dur" --latency)
    [[ -n $hdr ]] && args+=(-H "$hdr")
    local TIMEFORMAT='%U %S'
    local t
    t=$({ time timeout $((secs + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "$url" >"$outf" 2>&1; } 2>&1)
    WRK_CPU=$(awk '{print $1 + $2}' <<<"$t")
}

measure() { # measure TARGET RUN ATTEMPT: one measured run, appends to runs.csv; sets OTHER_PCT
    local target=$1 run=$2 attempt=$3 pid raw
    pid=$(pid_of "$target")
    raw="$OUT/raw/$target-$run-$attempt.txt"
    local o0 u0 s0 b0 bs0 m0 m0t l0 l0t
    o0=$(others)
    read -r u0 s0 < <(cpu_user_sys "$pid")
    read -r b0 bs0 < <(cpu_user_sys "$PID_backends")
    read -r m0 m0t < <(cpu_busy "$PROXY_CPU")
    read -r l0 l0t < <(cpu_busy "$LOAD_CPU")
    wrk_run "$target" "$DURATION" "$raw"
    local u1 s1 b1 bs1 m1 m1t l1 l1t rss o1
    read -r u1 s1 < <(cpu_user_sys "$pid")
    read -r b1 bs1 < <(cpu_user_sys "$PID_backends")
    read -r m1 m1t < <(cpu_busy "$PROXY_CPU")
    read -r l1 l1t < <(cpu_busy "$LOAD_CPU")
    rss=$(rss_kib "$pid")
    o1=$(others)
    local reqs rps p50 p99 non2xx sockerr
    reqs=$(awk '/requests in/ {print $1}' "$raw")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$raw")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$raw")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$raw")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$raw")
    sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$raw")
    [[ -n $reqs && -n $rps ]] || die "cannot read wrk output $raw"
    local secs=${DURATION%s}
    local line
    line=$(awk -v t="$target" -v r="$run" -v a="$attempt" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
        -v reqs="$reqs" -v n2="${non2xx:-0}" -v se="${sockerr:-0}" -v tick="$TICK" -v secs="$secs" \
        -v pu=$((u1 - u0)) -v ps=$((s1 - s0)) -v bc=$((b1 + bs1 - b0 - bs0)) -v wc="$WRK_CPU" -v rss="$rss" \
        -v m=$((m1 - m0)) -v mt=$((m1t - m0t)) -v l=$((l1 - l0)) -v lt=$((l1t - l0t)) \
        -v oth="${o0}${o1}" 'BEGIN {
            proxy = (pu + ps) / tick; back = bc / tick
            # busy share of the two pinned CPUs, in % of one core
            busy = 100 * (m / (mt > 0 ? mt : 1) + l / (lt > 0 ? lt : 1))
            other = busy - 100 * (proxy + back + wc) / secs
            if (other < 0) other = 0
            gsub(/ +$/, "", oth); gsub(/ /, ";", oth)
            printf "%s,%s,%s,%.0f,%s,%s,%s,%s,%s,%.2f,%.2f,%s,%.0f,%.0f,%.0f,%.0f,%.0f,%s,%.2f,%.2f\n",
                t, r, a, rps, p50, p99, reqs, n2, se, proxy, 1e6 * proxy / reqs, rss,
                100 * proxy / secs, 100 * wc / secs, 100 * back / secs, busy, other, oth,
                1e6 * pu / tick / reqs, 1e6 * ps / tick / reqs
        }')
    echo "$line" >>"$OUT/runs.csv"
    OTHER_PCT=$(cut -d, -f17 <<<"$line")
    local uu su
    IFS=, read -r _ _ _ rps p50 p99 reqs n2 se _ us rss pcpu _ _ _ other _ uu su <<<"$line"
    log "$target run $run: $rps req/s, p50 $p50 ms, p99 $p99 ms, $us µs CPU/req (user $uu, sys $su; proxy $pcpu %), RSS $((rss / 1024)) MiB, non-2xx $n2, socket errors $se, other load $other %"
}

for target in $TARGETS; do
    log "$target: warm-up $WARMUP"
    wrk_run "$target" "$WARMUP" "$OUT/raw/$target-warmup.txt"
    for run in $(seq "$RUNS"); do
        attempt=1
        while :; do
            [[ -z $(others) ]] || wait_quiet
            measure "$target" "$run" "$attempt"
            if ((OTHER_PCT > FOREIGN_MAX)) && ((attempt <= MAX_RETRY)); then
                log "$target run $run: other processes used ${OTHER_PCT} % of a core; repeating"
                attempt=$((attempt + 1))
                continue
            fi
            break
        done
    done
done

# ---------------------------------------------------------------- summary
# The last attempt of each run counts; medians per target; ratios to the matching HAProxy
# case (holdfast_ck and haproxy_ck to haproxy_ck, the others to haproxy).
awk -F, 'NR > 1 { key = $1 "," $2; last[key] = $0; if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    END { for (i = 1; i <= n; i++) print last[order[i]] }' "$OUT/runs.csv" >"$OUT/final.csv"
awk -F, -v targets="$TARGETS" '
    function median(list,   a, k, i, j, t) {
        k = split(list, a, " ")
        for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    { rps[$1] = rps[$1] " " $4; p50[$1] = p50[$1] " " $5; p99[$1] = p99[$1] " " $6
      us[$1] = us[$1] " " $11; rss[$1] = rss[$1] " " $12; pc[$1] = pc[$1] " " $13
      uu[$1] = uu[$1] " " $19; su[$1] = su[$1] " " $20
      bad[$1] += $8 + $9; runs[$1]++ }
    END {
        nt = split(targets, T, " ")
        for (i = 1; i <= nt; i++) { t = T[i]; if (!(t in runs)) continue
            R[t] = median(rps[t]); P50[t] = median(p50[t]); P99[t] = median(p99[t])
            U[t] = median(us[t]); S[t] = median(rss[t]); C[t] = median(pc[t])
            UU[t] = median(uu[t]); SU[t] = median(su[t]) }
        print "| target | req/s | p50 ms | p99 ms | RSS MiB | proxy CPU | CPU µs/req (user + sys) | req/s ratio | p99 ratio | µs/req ratio | errors |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nt; i++) { t = T[i]; if (!(t in runs)) continue
            ref = (t ~ /_ck$/) ? "haproxy_ck" : "haproxy"
            if (ref in R && R[ref] > 0) {
                rr = sprintf("%.2f", R[t] / R[ref]); pr = sprintf("%.2f", P99[t] / P99[ref]); ur = sprintf("%.2f", U[t] / U[ref])
            } else { rr = pr = ur = "-" }
            printf "| %s | %.0f | %.3f | %.3f | %.1f | %.0f %% | %.1f (%.1f + %.1f) | %s | %s | %s | %d |\n",
                t, R[t], P50[t], P99[t], S[t] / 1024, C[t], U[t], UU[t], SU[t], rr, pr, ur, bad[t]
        }
    }' "$OUT/final.csv" >"$OUT/table.md"

{
    echo
    echo "Proxy benchmark, median of $RUNS runs per target (ratios: *_ck to haproxy_ck, others to haproxy)"
    cat "$OUT/env.txt"
    echo
    cat "$OUT/table.md"
    echo
    echo "every run: $OUT/runs.csv; wrk output: $OUT/raw/"
}
