#!/bin/bash
# iris-main --after hook: run the migrations inside IRIS once the instance is up — every
# folder under /opt/app/migrations (or $BPLMIGRATE_MIGRATIONS), in order (0001_…, 0002_…,
# whatever class each is for).
# A folder already applied is a no-op, so a pod restart changes nothing; the first folder
# that fails stops the hook with its migrate.script exit status, and the folders after it
# do not run:
#   1 refused or failed (it changed no row; the items it disabled are enabled again),
#   2 the runner class could not be loaded,
#   5 the migration COMMITTED (its rows are migrated) but enabling the items afterwards
#     failed: they stay disabled; a re-run enables them.
set -euo pipefail
shopt -s nullglob
export LC_ALL=C # folder order by byte, as `plan --out` numbers them
root=${BPLMIGRATE_MIGRATIONS:-/opt/app/migrations}
dirs=("$root"/[0-9][0-9][0-9][0-9]_*/)
if [ "${#dirs[@]}" -eq 0 ]; then
  echo "bplmigrate: no migration folder under $root; nothing to run" >&2
  exit 0
fi
for dir in "${dirs[@]}"; do
  dir=${dir%/}
  echo "bplmigrate: running $dir" >&2
  status=0
  BPLMIGRATE_DIR="$dir" iris session IRIS -U APP < "$dir/migrate.script" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "bplmigrate: $dir failed (exit status $status); the folders after it were not run" >&2
    exit "$status"
  fi
done
