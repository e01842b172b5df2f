#!/bin/bash
# iris-main --after hook: run the migration inside IRIS once the instance is up.
# migrate.script exits 0 (migrated, or already applied: a pod restart is a no-op),
# 1 (refused or failed: nothing changed, the items it disabled are enabled again),
# 2 (the runner class could not be loaded).
set -euo pipefail
dir=$(ls -d /opt/app/migrations/[0-9][0-9][0-9][0-9]_* | tail -n 1)
BPLMIGRATE_DIR="$dir" iris session IRIS -U APP < "$dir/migrate.script"
