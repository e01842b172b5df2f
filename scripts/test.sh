#!/usr/bin/env bash
# The test command of bplmigrate (README, .ci/run): `bash scripts/test.sh`.
# With arguments, it runs `cargo test ARGS…` instead (e.g. `bash scripts/test.sh --test db_apply`).
#
# 1. installs what the database tests need when it is missing (Debian: unixodbc, unixodbc-dev,
#    odbc-postgresql, postgresql; sudo when not root);
# 2. starts a throwaway PostgreSQL on a free loopback port in a temporary folder, with a role,
#    a database and a private odbcinst.ini (no psqlODBC log files);
# 3. runs `cargo test --all-targets` and `cargo test --doc` with the database tests required
#    (BPLMIGRATE_REQUIRE_DB=1: a database test that cannot connect fails instead of skipping);
# 4. always stops the server and removes the temporary folder.
#
# Set BPLMIGRATE_TEST_CONNECT yourself (e.g. from `scripts/pg.sh env`) to use a running server.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-lib.sh
. scripts/pg-lib.sh

started=$(date +%s)
if [ -n "${HOME:-}" ] && [ -d "$HOME/.cargo/bin" ]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { rig_log "cargo not found: install Rust (rustup) first"; exit 2; }

if [ -n "${CI:-}" ]; then
  export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never CARGO_INCREMENTAL=0
fi

rig_ensure_packages

tmp=""
cleanup() {
  local rc=$?
  if [ -n "$tmp" ]; then
    rig_pg_stop "$tmp"
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${BPLMIGRATE_TEST_CONNECT:-}" ]; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/bplmigrate-test.XXXXXX")
  rig_pg_start "$tmp"
  BPLMIGRATE_TEST_CONNECT=$(cat "$tmp/connect")
  rig_write_odbcinst "$tmp"
  export ODBCSYSINI="$tmp" ODBCINI="$tmp/odbc.ini"
fi
export BPLMIGRATE_TEST_CONNECT BPLMIGRATE_REQUIRE_DB=1
# The tool itself must never pick up a developer's connection during tests.
unset BPLMIGRATE_CONNECT

rig_log "setup took $(($(date +%s) - started)) s"
status=0
if [ "$#" -gt 0 ]; then
  # A developer's selection, e.g. `bash scripts/test.sh --test db_apply`.
  cargo test "$@" || status=$?
else
  cargo test --no-fail-fast --all-targets || status=$?
  doc_status=0
  cargo test --no-fail-fast --doc || doc_status=$?
  [ "$status" -ne 0 ] || status=$doc_status
fi
rig_log "finished in $(($(date +%s) - started)) s with status $status"
exit "$status"
