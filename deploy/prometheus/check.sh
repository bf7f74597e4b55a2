#!/usr/bin/env bash
# Checks the Prometheus files: the scrape config (and the rule files it names), the rules,
# and the rules' unit tests (tests/*.test.yml: every alert firing and not firing).
# Needs promtool (Debian: apt-get install prometheus). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  echo "check.sh: promtool not found (Debian: apt-get install prometheus)" >&2
  exit 1
fi
promtool --version 2>&1 | head -n 1

echo "== promtool check config prometheus.yml"
promtool check config prometheus.yml

echo "== promtool check rules rules/*.yml"
promtool check rules rules/*.yml

echo "== promtool test rules tests/*.test.yml"
promtool test rules tests/*.test.yml
