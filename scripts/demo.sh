#!/usr/bin/env bash
# The operator runbook, end to end, against a throwaway PostgreSQL that stands in for IRIS:
#   bash scripts/demo.sh
# Starts a server (scripts/pg.sh), seeds waiting instances of fixtures/changes/insert_middle's
# old BPL, then: status, plan --out, info, status --plan (impact per group), apply while the
# host is enabled (refused), disable, apply --dry-run, apply, info, apply again (refused).
# Then the drain: fixtures/changes/removed_wait_state removes a wait state where instances
# rest; `status --plan --watch --until-ready` follows them finishing (a background loop stands
# in for the running process) and returns once none is left. Then exact undo:
# fixtures/changes/removed_wait_state_mapped merges two removed states into S4 (not invertible);
# apply records what it overwrites, apply --revert puts exactly those rows back, and refuses
# once one of them has moved on. Also: the prompt on a terminal (util-linux `script`), "already
# applied", a refusal as JSON, and the wrong namespace. Stops the server at the end.
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
step "$bin" apply "$dir" --yes --format json
"$demo_db" enable "$class" 0
step "$bin" apply "$dir" --dry-run
# The prompt on a terminal, answered "n".
printf '\n$ %s\n' "$bin apply $dir   (on a terminal, answered n)"
echo n | script -qec "$bin apply $dir" /dev/null | tr -d '\r' | grep -v '^n$'
echo "(exit ${PIPESTATUS[1]})"
step "$bin" apply "$dir" --yes
step "$bin" info --migrations "$out"
step "$bin" apply "$dir" --yes
# The wrong namespace: a connection to a database without the class's tables.
BPLMIGRATE_CONNECT=${BPLMIGRATE_CONNECT/Database=bplm_test/Database=postgres} step "$bin" apply "$dir" --yes

# The drain, on a fresh server (the history above says these rows were migrated already):
# a plan that removes the wait state S9 while instances wait there.
bash scripts/pg.sh stop
eval "$(bash scripts/pg.sh start)" || exit 2
export BPLMIGRATE_CONNECT=$BPLMIGRATE_TEST_CONNECT
old=fixtures/changes/removed_wait_state/old.cls
new=fixtures/changes/removed_wait_state/new.cls
drain=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-demo-drain.XXXXXX")
"$demo_db" seed "$old" || exit 2
# (exit 1: the plan's verdict is "drain first")
"$bin" plan "$old" "$new" --dialect postgres --out "$drain" >/dev/null || [ $? -eq 1 ] || exit 2
dir=$(ls -d "$drain"/0001_*)
( for _ in 1 2 3; do sleep 3; "$demo_db" finish "$old" S9; done ) &
step "$bin" status --plan "$dir" --watch --until-ready --interval 1 --timeout 10m
wait
"$demo_db" enable "$class" 0
step "$bin" apply "$dir" --yes

# Exact undo, on a fresh server: S9 and S10 are removed and mapped onto S4 by the reviewed
# overrides, so the revert cannot tell the rows apart by their state.
bash scripts/pg.sh stop
eval "$(bash scripts/pg.sh start)" || exit 2
export BPLMIGRATE_CONNECT=$BPLMIGRATE_TEST_CONNECT
old=fixtures/changes/removed_wait_state_mapped/old.cls
new=fixtures/changes/removed_wait_state_mapped/new.cls
undo=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-demo-undo.XXXXXX")
"$demo_db" seed "$old" || exit 2
"$bin" plan "$old" "$new" --overrides fixtures/changes/removed_wait_state_mapped/overrides.toml \
  --dialect postgres --out "$undo" >/dev/null || [ $? -eq 1 ] || exit 2
dir=$(ls -d "$undo"/0001_*)
"$demo_db" enable "$class" 0
step "$bin" apply "$dir" --yes
step "$bin" apply "$dir" --revert --yes
step "$bin" apply "$dir" --yes
# One of the merged instances moves on before the revert: refused, nothing changed.
"$demo_db" finish "$new" S4
step "$bin" apply "$dir" --revert --yes
rm -rf "$out" "$drain" "$undo"
