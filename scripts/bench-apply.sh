#!/usr/bin/env bash
# What `apply` costs over the bare rewrite:   bash scripts/bench-apply.sh ROWS
#
# Starts a throwaway PostgreSQL (scripts/pg-lib.sh), writes the migration folder of
# fixtures/changes/insert_middle (S11 -> S13, S12 -> S14), seeds ROWS thread rows once into a
# template database (`demo_db bench-seed`: half at S11, which the plan renumbers, half at wait
# states it keeps; a pending response per waiting row; a context row with a response handler
# per four rows), then 5 times, alternating which goes first:
#   - `bplmigrate apply DIR --yes` on a fresh copy (CREATE DATABASE … TEMPLATE), and
#   - `psql -1 -f` of the same UPDATE statements (apply.sql's rewrite section) on another copy.
# Wall-clock time of each command (process start to exit, both over a local TCP connection);
# the last line is `apply/psql at ROWS rows: R (apply A s, psql P s, medians of 5)`.
# Release build; a measurement, not a test (nothing asserts a time).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-lib.sh
. scripts/pg-lib.sh

rows=${1:?usage: bash scripts/bench-apply.sh ROWS}
case "$rows" in '' | *[!0-9]*) echo "ROWS must be a number" >&2; exit 2 ;; esac
runs=5
if [ -n "${HOME:-}" ] && [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi

rig_ensure_packages
cargo build -q --release --bin bplmigrate --example demo_db
bin=target/release/bplmigrate
seed=target/release/examples/demo_db

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-bench.XXXXXX")
cleanup() { rig_pg_stop "$tmp"; rm -rf "$tmp"; }
trap cleanup EXIT
rig_pg_start "$tmp"
rig_write_odbcinst "$tmp"
export ODBCSYSINI="$tmp" ODBCINI="$tmp/odbc.ini"
unset BPLMIGRATE_CONNECT
base=$(cat "$tmp/connect")
port=$(cat "$tmp/port")
pass=$(sed -n 's/.*Pwd=\([^;]*\);.*/\1/p' "$tmp/connect")
connect_to() { echo "$base" | sed "s/Database=[^;]*/Database=$1/"; }
admin() { PGPASSWORD=$pass PGOPTIONS='-c client_min_messages=error' psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U bplm_test -d bplm_test "$@"; }

"$bin" plan fixtures/changes/insert_middle/old.cls fixtures/changes/insert_middle/new.cls \
  --dialect postgres --out "$tmp/out" >/dev/null
dir=$(ls -d "$tmp"/out/0001_*)
# The rewrite section of apply.sql: the statements between START TRANSACTION and COMMIT.
sed -n '/^START TRANSACTION;$/,/^COMMIT;$/p' "$dir/apply.sql" | sed '1d;$d' >"$tmp/updates.sql"

admin -c 'CREATE DATABASE bench_seed'
BPLMIGRATE_CONNECT=$(connect_to bench_seed) "$seed" bench-seed "$dir" "$rows" >&2
PGOPTIONS='-c client_min_messages=error' admin -c 'VACUUM ANALYZE' -d bench_seed

# Seconds (3 decimals) a command takes; FAILED (and its stderr) when it does not exit 0.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@" >/dev/null 2>"$tmp/stderr"; then
    cat "$tmp/stderr" >&2
    echo FAILED
    return
  fi
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}
fresh() { admin -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 TEMPLATE bench_seed"; }
run_apply() { fresh bench_a; timed "$bin" apply "$dir" --connect "$(connect_to bench_a)" --yes; }
run_psql() {
  fresh bench_p
  timed env PGPASSWORD="$pass" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U bplm_test -d bench_p \
    -1 -f "$tmp/updates.sql"
}

a=() p=()
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) -eq 1 ]; then
    a+=("$(run_apply)"); p+=("$(run_psql)")
  else
    p+=("$(run_psql)"); a+=("$(run_apply)")
  fi
  echo "run $i: apply ${a[-1]} s, psql ${p[-1]} s" >&2
  case "${a[-1]} ${p[-1]}" in *FAILED*) echo "a run failed" >&2; exit 1 ;; esac
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
ma=$(median "${a[@]}")
mp=$(median "${p[@]}")
ratio=$(awk -v a="$ma" -v p="$mp" 'BEGIN { printf "%.2f", a / p }')
echo "apply/psql at $rows rows: $ratio (apply $ma s, psql $mp s, medians of $runs)"
