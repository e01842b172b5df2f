#!/usr/bin/env bash
# Keep a PostgreSQL test server around between test runs (developers):
#   bash scripts/pg.sh start    # start (once); prints the environment to use
#   eval "$(bash scripts/pg.sh env)"; cargo test
#   bash scripts/pg.sh stop     # stop it and remove its folder
# The server lives in ${BPLMIGRATE_PG_DIR:-/tmp/bplmigrate-pg-$(id -un)}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-lib.sh
. scripts/pg-lib.sh

dir=${BPLMIGRATE_PG_DIR:-/tmp/bplmigrate-pg-$(id -un)}

print_env() {
  printf "export BPLMIGRATE_TEST_CONNECT='%s'\n" "$(cat "$dir/connect")"
  printf "export ODBCSYSINI='%s' ODBCINI='%s'\n" "$dir" "$dir/odbc.ini"
}

case "${1:-}" in
  start)
    if [ -f "$dir/data/postmaster.pid" ] && [ -f "$dir/connect" ]; then
      rig_log "already running in $dir"
    else
      rig_ensure_packages
      rm -rf "$dir"
      mkdir -p "$dir"
      rig_pg_start "$dir"
      rig_write_odbcinst "$dir"
    fi
    print_env
    ;;
  env)
    [ -f "$dir/connect" ] || { rig_log "not running: bash scripts/pg.sh start"; exit 1; }
    print_env
    ;;
  stop)
    rig_pg_stop "$dir"
    rm -rf "$dir"
    ;;
  *)
    echo "usage: bash scripts/pg.sh start|env|stop" >&2
    exit 2
    ;;
esac
