#!/usr/bin/env bash
# keepalived `vrrp_script` for one holdfast node: healthy when the node says it is ready
# (/readyz: its raft core runs, it is a voter, and it has caught up with the leader) AND
# its HTTP frontend accepts a request. Any HTTP status counts on
# the frontend (a 503 from an empty backend is still a live proxy): the point is that
# clients sent to the floating IP get an answer from this node's holdfast.
#
# Both checks are on loopback with a 1 s budget each, well under the script's
# `timeout` in keepalived.conf, so a wedged node fails the check instead of hanging it.
set -euo pipefail

admin="${HOLDFAST_ADMIN:-http://127.0.0.1:8410}"
http="${HOLDFAST_HTTP:-http://127.0.0.1:80}"

# /readyz needs no token: the check carries no secret. 503 (not ready) fails it.
curl -fsS --max-time 1 -o /dev/null "$admin/readyz"
# -f is left out on purpose: any status line is an answer. curl still fails on refused
# or timed-out connections.
curl -sS --max-time 1 -o /dev/null "$http/"
