#!/usr/bin/env bash
# Byte-for-byte comparison of two bplmigrate binaries over every fixture, for changes that must
# not alter output (e.g. a faster representation):
#
#   bash scripts/compare-outputs.sh OLD_BIN NEW_BIN [EXTRA_DIR]
#
# Runs `states` (every format, both compilers) on every BPL under fixtures/ (and EXTRA_DIR,
# e.g. the classes `KEEP=DIR bash scripts/bench-scale.sh` leaves behind), and `diff` and `plan`
# (human and json) on every old/new pair of fixtures/changes, every consecutive pair of
# fixtures/states inputs, and old-N/new-N pairs in EXTRA_DIR. Compares stdout, stderr and the
# exit code; prints each difference and exits 1 if there was one.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_BIN NEW_BIN [EXTRA_DIR]" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") extra=${3:-}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
n=0 bad=0

check() {
    n=$((n + 1))
    "$a" "$@" >"$work/a.out" 2>"$work/a.err"; echo "exit $?" >>"$work/a.out"
    "$b" "$@" >"$work/b.out" 2>"$work/b.err"; echo "exit $?" >>"$work/b.out"
    if ! cmp -s "$work/a.out" "$work/b.out" || ! cmp -s "$work/a.err" "$work/b.err"; then
        bad=$((bad + 1))
        echo "DIFFERS: $*"
        diff "$work/a.out" "$work/b.out" | head -5
        diff "$work/a.err" "$work/b.err" | head -5
    fi
}

mapfile -t files < <(find fixtures ${extra:+"$extra"} -type f \( -name '*.cls' -o -name '*.xml' \) | sort)
for f in "${files[@]}"; do
    for fmt in human json dot mermaid; do
        for c in current legacy; do check states "$f" --format "$fmt" --compiler "$c"; done
    done
done
pairs=()
for d in fixtures/changes/*/; do
    [ -f "$d/old.cls" ] && pairs+=("$d/old.cls $d/new.cls")
done
mapfile -t st < <(find fixtures/states -name 'process.*' | sort)
for ((i = 1; i < ${#st[@]}; i++)); do pairs+=("${st[i-1]} ${st[i]}"); done
if [ -n "$extra" ]; then
    for o in "$extra"/old-*.cls; do [ -f "$o" ] && pairs+=("$o ${o/old-/new-}"); done
fi
for p in "${pairs[@]}"; do
    read -r o nw <<<"$p"
    for fmt in human json; do
        check diff "$o" "$nw" --format "$fmt"
        check plan "$o" "$nw" --format "$fmt"
    done
done
echo "compare-outputs: $n runs, $bad differ"
[ "$bad" -eq 0 ]
