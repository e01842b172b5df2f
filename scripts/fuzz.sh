#!/usr/bin/env bash
# Build and run the libFuzzer targets in fuzz/ without cargo-fuzz (stable toolchain; the
# sanitizer-coverage flags below are what `cargo fuzz build` passes, minus the sanitizer).
#   scripts/fuzz.sh build                 build every target
#   scripts/fuzz.sh run TARGET SECONDS    fuzz one target with ONE job for SECONDS
#   scripts/fuzz.sh replay                run every target once over its corpus and the
#                                         regression inputs in fuzz/regressions/TARGET/
# Targets: bpl_reader thread_class_reader overrides_parser plan_folder_reader
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
TARGETS=(bpl_reader thread_class_reader overrides_parser plan_folder_reader)
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
BIN=target/$TRIPLE/release

build() { [ -n "${FUZZ_NO_BUILD:-}" ] || cargo build --release --target "$TRIPLE" --bins; }

seed() { # the seed corpus: the project's own fixtures of that kind
  local t=$1 dir=corpus/$1
  mkdir -p "$dir"
  case $t in
    bpl_reader) cp ../fixtures/changes/*/*.cls ../fixtures/formats/* ../fixtures/malformed/*.cls ../fixtures/malformed/*.xml "$dir"/ 2>/dev/null || true ;;
    thread_class_reader) find ../fixtures/generated -type f -name '*.cls' -exec cp {} "$dir"/ \; 2>/dev/null || true ;;
    overrides_parser) find ../fixtures -name '*.toml' -exec cp {} "$dir"/ \; ;;
    plan_folder_reader) # plan.json of every change fixture (mode byte 1), and a checksum file (0)
      local tmp; tmp=$(mktemp -d)
      (cd .. && env -u RUSTFLAGS cargo build -q)
      for c in ../fixtures/changes/*/; do
        local ov=(); [ -f "$c/overrides.toml" ] && ov=(--overrides "$c/overrides.toml")
        ../target/debug/bplmigrate plan "$c/old.cls" "$c/new.cls" "${ov[@]}" --out "$tmp/$(basename "$c")" >/dev/null 2>&1 || true
      done
      for p in "$tmp"/*/*/plan.json; do
        [ -f "$p" ] || continue
        local name; name=$(basename "$(dirname "$(dirname "$p")")")
        { printf '\001'; cat "$p"; } > "$dir/$name.json"
        { printf '\000'; cat "$(dirname "$p")/CHECKSUMS.sha256" 2>/dev/null || true; } > "$dir/$name.sums"
      done
      rm -rf "$tmp" ;;
  esac
}

case "${1:-}" in
  build) build ;;
  run)
    t=$2 secs=$3
    build
    seed "$t"
    mkdir -p "artifacts/$t"
    "$BIN/$t" "corpus/$t" -max_total_time="$secs" -jobs=1 -workers=1 -rss_limit_mb=2048 \
      -timeout=10 -max_len=65536 -artifact_prefix="artifacts/$t/" -print_final_stats=1
    ;;
  replay)
    build
    for t in "${TARGETS[@]}"; do
      mkdir -p "regressions/$t"
      set -- regressions/$t/*
      [ -e "${1:-}" ] || continue
      "$BIN/$t" -runs=0 "$@"
    done
    ;;
  *) sed -n 2,9p "$0"; exit 2 ;;
esac
