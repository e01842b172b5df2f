#!/usr/bin/env bash
# The operator runbook, end to end, against a throwaway PostgreSQL that stands in for IRIS:
#   bash scripts/demo.sh
# Starts a server (scripts/pg.sh), seeds waiting instances of fixtures/changes/insert_middle's
# old BPL, then: status, plan --out, apply while the host is enabled (refused), disable,
# apply --dry-run, apply, status. Stops the server at the end.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

old=fixtures/changes/insert_middle/old.cls
new=fixtures/changes/insert_middle/new.cls
class=Demo.Change.Loan

export BPLMIGRATE_PG_DIR=${BPLMIGRATE_PG_DIR:-/tmp/bplmigrate-demo-$(id -un)}
eval "$(bash scripts/pg.sh start)" || exit 2
trap 'bash scripts/pg.sh stop' EXIT
export BPLMIGRATE_CONNECT=$BPLMIGRATE_TEST_CONNECT

cargo build -q --bin bplmigrate --example demo_db || exit 2
bin=target/debug/bplmigrate
out=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-demo-out.XXXXXX")

step() { printf '\n$ %s\n' "$*"; "$@"; echo "(exit $?)"; }

target/debug/examples/demo_db seed "$old" || exit 2
step "$bin" status "$old"
step "$bin" plan "$old" "$new" --dialect postgres --out "$out"
dir=$(ls -d "$out"/0001_*)
step "$bin" apply "$dir" --yes
target/debug/examples/demo_db enable "$class" 0
step "$bin" apply "$dir" --dry-run
step "$bin" apply "$dir" --yes
step "$bin" status "$new"
step "$bin" apply "$dir" --yes
rm -rf "$out"
