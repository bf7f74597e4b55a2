#!/usr/bin/env bash
# HTTP/2 over TLS benchmark: holdfast vs HAProxy, returning clients, the same load in the
# same run.
#
# One single-process nginx serves both backends (127.0.0.1:9001 "s1", :9002 "s2", HTTP/1.1
# keep-alive, from bench/proxy/backends.nginx.conf). HAProxy 2.6 (nbthread 1, `bind ... ssl
# alpn h2,http/1.1`, cookie insert) listens on :8443, holdfast (one tokio worker thread, a
# TLS frontend, insert persistence) on :8444, both with the same self-signed ECDSA P-256
# certificate. h2load drives each in turn: CONNS connections, STREAMS concurrent streams
# each, every request carrying the proxy's persistence cookie (HAProxy's SRV=s1,
# holdfast's HFSID from a first response). Proxy on CPU 0; h2load and the backends on
# CPU 1 (taskset). Per run: req/s, mean request time, the proxy's CPU time per request
# (utime+stime from /proc/PID/stat over the run / requests done), RSS after the run.
# The targets take turns, run by run, so host noise falls on both.
#
# Usage: bench/h2.sh           (from anywhere; ~3 min on a quiet machine)
# Knobs (env): RUNS=3 DURATION=15 WARMUP=3 CONNS=50 STREAMS=10 PROXY_CPU=0 LOAD_CPU=1
#   QUIET_WAIT=1200 QUIET_POLL=20 SKIP_BUILD=0 TARGETS="haproxy holdfast"
#   OUT=bench/results/h2-<time>
# It stops exactly the processes it started (by pid), also on failure or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-10}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
QUIET_WAIT=${QUIET_WAIT:-1200}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGETS=${TARGETS:-"haproxy holdfast"}
OUT=${OUT:-$ROOT/bench/results/h2-$(date -u +%Y%m%dT%H%M%SZ)}
HOLDFAST="$ROOT/target/release/holdfast"
TICK=$(getconf CLK_TCK)

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
cleanup() { stop_started; }
trap cleanup EXIT
trap 'exit 130' INT TERM

need_tools haproxy:haproxy nginx:nginx-light h2load:nghttp2-client curl:curl \
    openssl:openssl taskset:util-linux
for port in 8443 8444 9001 9002 8413 8423; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        die "127.0.0.1:$port is in use; this benchmark needs 8443-8444, 9001-9002, 8413, 8423"
    fi
done
if [[ $SKIP_BUILD != 1 ]]; then
    log "building holdfast (release)"
    (cd "$ROOT" && timeout 3600 cargo build --release -p holdfast --locked)
fi
[[ -x $HOLDFAST ]] || die "$HOLDFAST not built"
mkdir -p "$OUT/raw" "$OUT/backends" "$OUT/holdfast"

# ---------------------------------------------------------------- certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
cat "$OUT/cert.pem" "$OUT/key.pem" >"$OUT/haproxy.pem"

# ---------------------------------------------------------------- servers
cat >"$OUT/haproxy.cfg" <<EOF
# Written by bench/h2.sh: the HAProxy anchor's backend behind an h2 TLS listener.
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client  30s
    timeout server  30s
    timeout http-keep-alive 30s
frontend fe
    bind 127.0.0.1:8443 ssl crt $OUT/haproxy.pem alpn h2,http/1.1
    default_backend be
backend be
    balance roundrobin
    cookie SRV insert indirect nocache
    server s1 127.0.0.1:9001 cookie s1
    server s2 127.0.0.1:9002 cookie s2
EOF
cat >"$OUT/holdfast.toml" <<EOF
# Written by bench/h2.sh: a cluster of one behind a TLS frontend.
[node]
id = 1
data_dir = "$OUT/holdfast/data"

[cluster]
secret = "bench-h2-secret-0123456789abcdef"
peer_listen = "127.0.0.1:8423"

[admin]
listen = "127.0.0.1:8413"

[[frontend]]
name = "fe"
listen = "127.0.0.1:8444"
default_backend = "be"
tls = { certs = [{ cert = "$OUT/cert.pem", key = "$OUT/key.pem" }] }

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

log "starting backends, HAProxy and holdfast (output in $OUT)"
start_bg backends "$LOAD_CPU" "$OUT/backends.log" \
    nginx -p "$OUT/backends/" -c "$ROOT/bench/proxy/backends.nginx.conf" -e stderr
start_bg haproxy "$PROXY_CPU" "$OUT/haproxy.log" haproxy -db -f "$OUT/haproxy.cfg"
start_bg holdfast "$PROXY_CPU" "$OUT/holdfast.log" env HOLDFAST_WORKER_THREADS=1 \
    "$HOLDFAST" run --config "$OUT/holdfast.toml"

wait_url https://127.0.0.1:8443/
wait_url https://127.0.0.1:8444/
HF_COOKIE=$(curl -sk -D - -o /dev/null https://127.0.0.1:8444/ |
    awk 'tolower($1) == "set-cookie:" {sub(/;.*/, "", $2); print $2; exit}')
[[ $HF_COOKIE == HFSID=* ]] || die "holdfast set no HFSID cookie"
log "holdfast cookie: $HF_COOKIE"

url_of() { case $1 in haproxy) echo https://127.0.0.1:8443/ ;; holdfast) echo https://127.0.0.1:8444/ ;; esac; }
pid_of() { case $1 in haproxy) echo "$PID_haproxy" ;; holdfast) echo "$PID_holdfast" ;; esac; }
cookie_of() { case $1 in haproxy) echo "cookie: SRV=s1" ;; holdfast) echo "cookie: $HF_COOKIE" ;; esac; }

h2load_run() { # h2load_run TARGET SECONDS OUTFILE
    timeout $(($2 + 60)) taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$STREAMS" -D "$2" \
        -H "$(cookie_of "$1")" "$(url_of "$1")" >"$3" 2>&1
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "holdfast: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "haproxy: $(haproxy -v 2>&1 | head -1)"
    echo "h2load: $(h2load --version 2>&1 | head -1)"
    echo "load: h2load -c$CONNS -m$STREAMS -D$DURATION over TLS 1.3 + h2, returning clients; $RUNS runs per target, alternating between targets, after a ${WARMUP}s warm-up; proxy on CPU $PROXY_CPU, h2load and backends on CPU $LOAD_CPU"
} >"$OUT/env.txt"
echo "target,run,req_s,mean_ms,requests,failed,non2xx,proxy_cpu_s,cpu_us_per_req,rss_kib" >"$OUT/runs.csv"

measure() { # measure TARGET RUN
    local target=$1 run=$2 pid raw c0 c1 reqs rps mean failed n2 rss
    pid=$(pid_of "$target")
    raw="$OUT/raw/$target-$run.txt"
    wait_quiet
    c0=$(cpu_ticks "$pid")
    h2load_run "$target" "$DURATION" "$raw"
    c1=$(cpu_ticks "$pid")
    rss=$(rss_kib "$pid")
    rps=$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($i == "req/s,") print $(i - 1)}' "$raw")
    reqs=$(awk '/^requests:/ {print $8}' "$raw")
    failed=$(awk '/^requests:/ {print $10}' "$raw")
    n2=$(awk '/^status codes:/ {print $5 + $7 + $9}' "$raw")
    mean=$(awk '/^time for request:/ {print $6}' "$raw") # min max mean sd
    [[ -n $reqs && -n $rps ]] || die "cannot read h2load output $raw"
    awk -v t="$target" -v r="$run" -v rps="$rps" -v mean="$(to_ms "$mean")" -v reqs="$reqs" \
        -v f="$failed" -v n2="$n2" -v c=$((c1 - c0)) -v tick="$TICK" -v rss="$rss" 'BEGIN {
            cpu = c / tick
            printf "%s,%s,%s,%s,%s,%s,%s,%.2f,%.1f,%s\n", t, r, rps, mean, reqs, f, n2, cpu,
                1e6 * cpu / (reqs > 0 ? reqs : 1), rss }' >>"$OUT/runs.csv"
    log "$target run $run: $(tail -1 "$OUT/runs.csv")"
}

for target in $TARGETS; do
    log "$target: warm-up ${WARMUP}s"
    h2load_run "$target" "$WARMUP" "$OUT/raw/$target-warmup.txt"
done
# Runs alternate between the targets, so a minute of host noise (steal) falls on both
# rather than on every run of one.
for run in $(seq "$RUNS"); do
    for target in $TARGETS; do measure "$target" "$run"; done
done

# Medians per target, with ratios to HAProxy.
awk -F, 'NR > 1 { r[$1] = r[$1] " " $3; u[$1] = u[$1] " " $9; m[$1] = m[$1] " " $4 }
    function median(s,   a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        printf "%-10s %10s %10s %12s %10s %10s\n", "target", "req/s", "mean ms", "CPU us/req", "req/s ×", "CPU ×"
        for (t in r) { R[t] = median(r[t]); U[t] = median(u[t]); M[t] = median(m[t]) }
        for (t in r) printf "%-10s %10.0f %10.2f %12.1f %10.2f %10.2f\n", t, R[t], M[t], U[t],
            ("haproxy" in R) ? R[t] / R["haproxy"] : 0, ("haproxy" in U) ? U[t] / U["haproxy"] : 0
    }' "$OUT/runs.csv" | tee "$OUT/summary.txt"
echo "every run: $OUT/runs.csv; h2load output: $OUT/raw/"
