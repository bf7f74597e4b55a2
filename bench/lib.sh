# Shared by the benchmark scripts (`proxy.sh`, `scale.sh`, `h2.sh`): logging, the processes a run
# started (and only those are stopped), tools from Debian, waiting for a quiet machine,
# and reading CPU time, RSS and wrk latencies. Sourced, never run.

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

# ---------------------------------------------------------------- processes we started
# Every process goes into STARTED (start_bg); stop_one stops one early, stop_started the
# rest (from the script's EXIT trap).
STARTED=()
forget() { # forget PID: drops PID from STARTED (it ended)
    local p keep=()
    for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}
stop_pids() { # stop_pids PID...: TERM, up to 10 s each, then KILL
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
stop_one() { # stop_one PID: stops it and forgets it
    stop_pids "$1"
    forget "$1"
}
stop_started() { # stops every process still in STARTED
    stop_pids "${STARTED[@]}"
    STARTED=()
}
start_bg() { # start_bg NAME CPU LOGFILE CMD...: runs CMD pinned, its pid in PID_NAME
    local name=$1 cpu=$2 logf=$3
    shift 3
    taskset -c "$cpu" "$@" >>"$logf" 2>&1 &
    STARTED+=("$!")
    printf -v "PID_$name" '%s' "$!"
}

# ---------------------------------------------------------------- tools
need_tools() { # need_tools CMD:PACKAGE...: installs the packages of missing commands
    local need=() t
    for t in "$@"; do command -v "${t%%:*}" >/dev/null || need+=("${t##*:}"); done
    if ((${#need[@]})); then
        log "installing ${need[*]} from Debian"
        timeout 600 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# ---------------------------------------------------------------- quiet machine
others() { # compilers, cargo runs and holdfast processes that are not ours
    local mine=" ${STARTED[*]} "
    {
        pgrep -x cargo || true
        pgrep rustc || true
        pgrep -x holdfast || true
    } | while read -r p; do [[ $mine == *" $p "* ]] || echo "$p"; done | sort -u | tr '\n' ' '
}
QUIET="yes"
wait_quiet() { # waits up to QUIET_WAIT s (polling every QUIET_POLL) for others to end
    local waited=0 o poll=${QUIET_POLL:-10}
    while o=$(others) && [[ -n $o ]]; do
        if ((waited >= QUIET_WAIT)); then
            log "machine still busy after ${waited}s (pids: $o); measuring anyway"
            QUIET="no (cargo/rustc/holdfast pids $o still running after ${waited}s)"
            return
        fi
        log "waiting for a quiet machine (cargo/rustc/holdfast pids: $o)"
        sleep "$poll"
        waited=$((waited + poll))
    done
    ((waited == 0)) || log "machine quiet after ${waited}s"
}

# ---------------------------------------------------------------- servers
wait_url() { # wait_url URL: until it answers 2xx (20 s; a TLS certificate is not checked)
    for _ in $(seq 200); do
        curl -fsSk -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$1 does not answer"
}

# ---------------------------------------------------------------- measurements
cpu_user_sys() { # "utime stime" of PID (all its threads), in clock ticks
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # after "pid (comm) ": field 3 is state, utime is field 14, stime field 15
    awk '{print $12, $13}' <<<"$stat"
}
cpu_ticks() { # utime+stime of the given pids (all threads), in clock ticks
    local pid u s total=0
    for pid in "$@"; do
        read -r u s < <(cpu_user_sys "$pid")
        total=$((total + u + s))
    done
    echo "$total"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_busy() { # busy and total jiffies of cpuN
    awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}
to_ms() { # wrk latency ("812.00us", "1.14ms", "1.02s") in ms
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}
