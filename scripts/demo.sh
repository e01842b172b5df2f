#!/usr/bin/env bash
# The operator runbook, end to end, against a throwaway PostgreSQL that stands in for IRIS:
#   bash scripts/demo.sh
# Starts a server (scripts/pg.sh), seeds waiting instances of fixtures/changes/insert_middle's
# old BPL, then: status, plan --out, info, status --plan (impact per group), apply while the
# host is enabled (refused), disable, apply --dry-run, apply, info, apply again (refused).
# Then the drain: fixtures/changes/removed_wait_state removes a wait state where instances
# rest; `status --plan --watch --until-ready` follows them finishing (a background loop stands
# in for the running process) and returns once none is left. Stops the server at the end.
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
demo_db=target/debug/examples/demo_db
out=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-demo-out.XXXXXX")

step() { printf '\n$ %s\n' "$*"; "$@"; echo "(exit $?)"; }

"$demo_db" seed "$old" || exit 2
step "$bin" status "$old"
step "$bin" plan "$old" "$new" --dialect postgres --out "$out"
dir=$(ls -d "$out"/0001_*)
step "$bin" info --migrations "$out"
step "$bin" status --plan "$dir"
step "$bin" apply "$dir" --yes
"$demo_db" enable "$class" 0
step "$bin" apply "$dir" --dry-run
step "$bin" apply "$dir" --yes
step "$bin" info --migrations "$out"
step "$bin" apply "$dir" --yes

# The drain, on a fresh server (the history above says these rows were migrated already):
# a plan that removes the wait state S9 while instances wait there.
bash scripts/pg.sh stop
eval "$(bash scripts/pg.sh start)" || exit 2
export BPLMIGRATE_CONNECT=$BPLMIGRATE_TEST_CONNECT
old=fixtures/changes/removed_wait_state/old.cls
new=fixtures/changes/removed_wait_state/new.cls
drain=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-demo-drain.XXXXXX")
"$demo_db" seed "$old" || exit 2
"$bin" plan "$old" "$new" --dialect postgres --out "$drain" >/dev/null || exit 2
dir=$(ls -d "$drain"/0001_*)
( for _ in 1 2 3; do sleep 3; "$demo_db" finish "$old" S9; done ) &
step "$bin" status --plan "$dir" --watch --until-ready --interval 1 --timeout 10m
wait
"$demo_db" enable "$class" 0
step "$bin" apply "$dir" --yes
rm -rf "$out" "$drain"
