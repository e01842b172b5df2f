#!/usr/bin/env bash
# Renders the README pictures: SVG from the binary, PNG with resvg (examples/render_svg.rs, the
# system fonts; DejaVu Sans Mono on Debian: `apt-get install fonts-dejavu-core`).
#   docs/pictures/removed_wait_state.png  plan OLD NEW --format svg of fixtures/changes/removed_wait_state
#   docs/pictures/flow_threads.png        states --format svg of fixtures/generated/ex08_flow_threads
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin bplmigrate --example render_svg
bin=target/debug/bplmigrate
render=target/debug/examples/render_svg
out=docs/pictures
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pair=fixtures/changes/removed_wait_state
"$bin" plan "$pair/old.cls" "$pair/new.cls" --format svg >"$tmp/removed_wait_state.svg" || [[ $? -eq 1 ]] # blocked: exit 1
"$render" "$tmp/removed_wait_state.svg" "$out/removed_wait_state.png"
"$bin" states fixtures/generated/ex08_flow_threads/process.cls --format svg >"$tmp/flow_threads.svg"
"$render" "$tmp/flow_threads.svg" "$out/flow_threads.png"
