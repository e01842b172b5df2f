#!/usr/bin/env bash
# The main job on the bundled fixtures (README, first command):
#   bash scripts/example.sh [CASE]        # CASE: a folder of fixtures/changes (default insert_middle)
# Builds bplmigrate (installing unixodbc-dev first when missing: odbc-api links libodbc), then
# shows the old BPL's compiled states, the CI verdict, and writes the migration folder
# (plan.json, apply.sql, revert.sql, README.md, CHECKSUMS.sha256) to target/example-migrations/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-lib.sh
. scripts/pg-lib.sh

case=${1:-insert_middle}
dir=fixtures/changes/$case
[ -f "$dir/old.cls" ] || { rig_log "no fixture pair in $dir (see fixtures/changes/)"; exit 2; }
if [ -n "${HOME:-}" ] && [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
command -v cargo >/dev/null 2>&1 || { rig_log "cargo not found: install Rust (rustup) first"; exit 2; }
if ! dpkg -s unixodbc-dev >/dev/null 2>&1; then
  rig_log "installing unixodbc-dev (odbc-api links libodbc)"
  rig_as_root apt-get update -qq
  rig_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unixodbc unixodbc-dev >/dev/null
fi
cargo build -q --bin bplmigrate
bin=target/debug/bplmigrate

echo "\$ bplmigrate states $dir/old.cls"
"$bin" states "$dir/old.cls"
echo
echo "\$ bplmigrate check $dir/old.cls $dir/new.cls"
"$bin" check "$dir/old.cls" "$dir/new.cls" && rc=0 || rc=$?
echo "(check exit $rc: 0 safe as is, 1 needs a drain, a migration, or is blocked)"
echo
rm -rf target/example-migrations
echo "\$ bplmigrate plan $dir/old.cls $dir/new.cls --out target/example-migrations"
"$bin" plan "$dir/old.cls" "$dir/new.cls" --out target/example-migrations
