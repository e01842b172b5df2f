#!/usr/bin/env bash
# Times `states --format svg` (and `plan --format svg`) on generated processes: N sequential
# synchronous calls (2 states each) and a mixed shape with ifs, loops and scopes. Prints
# "shape states seconds" lines. Usage: scripts/bench-pictures.sh [BINARY] (default: release build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/bplmigrate}
if [[ $# -eq 0 ]]; then cargo build --release --quiet; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# N sequential waits: <call async='0'> each.
seq_calls() {
  local n=$1
  echo "<process request='Ens.Request' response='Ens.Response'><sequence>"
  for ((i = 1; i <= n; i++)); do
    echo "<call name='C$i' target='Op' async='0'><request type='Ens.Request'/><response type='Ens.Response'/></call>"
  done
  echo "</sequence></process>"
}
# Blocks of if / while / scope, each holding waits, until about $1 states.
mixed() {
  local blocks=$1
  echo "<process request='Ens.Request' response='Ens.Response'><context><property name='n' type='%Integer'/></context><sequence>"
  for ((i = 1; i <= blocks; i++)); do
    echo "<if name='If$i' condition='context.n&gt;$i'><true>"
    echo "<call name='A$i' target='Op' async='0'><request type='Ens.Request'/></call>"
    echo "</true><false><delay name='D$i' duration='\"PT1S\"'/></false></if>"
    echo "<while name='W$i' condition='context.n&lt;$i'>"
    echo "<call name='B$i' target='Op' async='0'><request type='Ens.Request'/></call>"
    echo "<assign property='context.n' value='context.n+1'/></while>"
    echo "<scope name='Sc$i'><call name='E$i' target='Op' async='0'><request type='Ens.Request'/></call>"
    echo "<faulthandlers><catchall><assign property='context.n' value='0'/></catchall></faulthandlers></scope>"
  done
  echo "</sequence></process>"
}

run() {
  local name=$1 file=$2 shift_args=("${@:3}")
  local states
  states=$("$bin" states "$file" --class Bench.P --format json | grep -c '"role"' || true)
  local t0 t1
  t0=$(date +%s.%N)
  if timeout 120 "$bin" "${shift_args[@]}" >/dev/null; then
    t1=$(date +%s.%N)
    printf '%-28s %6s states  %8.3f s\n' "$name" "$states" "$(echo "$t1 - $t0" | bc)"
  else
    printf '%-28s %6s states  >120 s (timed out) or failed\n' "$name" "$states"
  fi
}

for n in 10 20 25 50 1000; do
  seq_calls "$n" >"$tmp/seq$n.xml"
  run "sequential waits n=$n" "$tmp/seq$n.xml" states "$tmp/seq$n.xml" --class Bench.P --format svg
done
mixed 105 >"$tmp/mixed.xml"
run "mixed if/while/scope" "$tmp/mixed.xml" states "$tmp/mixed.xml" --class Bench.P --format svg
if "$bin" plan --help | grep -q -- '--format <FORMAT>' && "$bin" plan --help | grep -q svg; then
  seq_calls 999 >"$tmp/seq999.xml"
  run "plan n=1000 -> n=999 (svg)" "$tmp/seq1000.xml" plan "$tmp/seq1000.xml" "$tmp/seq999.xml" --class Bench.P --format svg
fi
