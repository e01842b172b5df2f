#!/usr/bin/env bash
# Whole-process time and peak memory of the CLI on generated processes of growing size.
#
#   bash scripts/bench-scale.sh            # sizes 1000,10000,100000, 3 runs each
#   RUNS=5 SIZES=1000,10000 bash scripts/bench-scale.sh
#   FLAT_SIZES= bash scripts/bench-scale.sh        # without the flat 40,000-activity sequence
#   KEEP=/tmp/scale bash scripts/bench-scale.sh   # keep the generated classes there
#   BIN=/tmp/old/bplmigrate bash scripts/bench-scale.sh   # time another build (before/after)
#
# Builds the release binary, writes old/new classes with `cargo bench --bench scale -- --write`
# (the new one has 40 edits; `scale` shape at SIZES, `flat` shape — one long top-level sequence —
# at FLAT_SIZES, default 40000), then runs `states --format json`, `diff` and `plan` on each size
# under /usr/bin/time -v, output to /dev/null. Prints a Markdown table with the median wall time
# the median user+system CPU time and the median peak resident set (max RSS) of the runs, and
# the growth factor of CPU time and RSS against the previous size. A measurement, not a test:
# nothing here fails on a slow run.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SIZES=${SIZES:-1000,10000,100000}
FLAT_SIZES=${FLAT_SIZES-40000}
[ -x /usr/bin/time ] || { echo "bench-scale: needs GNU time at /usr/bin/time" >&2; exit 2; }

dir=${KEEP:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"

if [ -n "${BIN:-}" ]; then
    bin=$BIN
else
    cargo build --release --quiet --bin bplmigrate
    bin=target/release/bplmigrate
fi
BPLMIGRATE_SCALE_SIZES=$SIZES BPLMIGRATE_SCALE_FLAT_SIZES=$FLAT_SIZES cargo bench --quiet --bench scale -- --write "$dir" >"$dir/sizes.txt"

# median of the numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# measure CMD...: RUNS runs; sets T (median wall seconds), C (median user+system CPU seconds)
# and M (median max RSS, MB). The machine may be shared: CPU time is the steadier figure.
measure() {
    local ts=() cs=() ms=() i
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -v -o "$dir/time.txt" "$@" >/dev/null 2>"$dir/stderr.txt" || true
        ts+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(j=1;j<=n;j++) s=s*60+p[j]; print s}' "$dir/time.txt")")
        cs+=("$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.2f", s}' "$dir/time.txt")")
        ms+=("$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$dir/time.txt")")
    done
    T=$(printf '%s\n' "${ts[@]}" | median)
    C=$(printf '%s\n' "${cs[@]}" | median)
    M=$(printf '%s\n' "${ms[@]}" | median)
}

declare -A prevT prevM
echo "| shape | activities | KiB | threads | states | command | wall s | CPU s | peak RSS MB | CPU ×/10× | RSS ×/10× |"
echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
while read -r shape size n bytes; do
    prefix=; [ "$shape" = flat ] && prefix=flat-
    old="$dir/${prefix}old-$size.cls" new="$dir/${prefix}new-$size.cls"
    summary=$("$bin" states "$old" --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["threads"]), sum(len(t["states"]) for t in d["threads"]))')
    read -r threads states <<<"$summary"
    for cmd in states diff plan; do
        case $cmd in
            states) measure "$bin" states "$old" --format json ;;
            diff) measure "$bin" diff "$old" "$new" ;;
            plan) measure "$bin" plan "$old" "$new" ;;
        esac
        gt=- gm=-
        if [ "$shape" = scale ] && [ -n "${prevT[$cmd]:-}" ]; then
            gt=$(awk -v a="$C" -v b="${prevT[$cmd]}" 'BEGIN {if (b > 0) printf "%.1f", a / b; else printf "-"}')
            gm=$(awk -v a="$M" -v b="${prevM[$cmd]}" 'BEGIN {printf "%.1f", a / b}')
        fi
        [ "$shape" = scale ] && prevT[$cmd]=$C prevM[$cmd]=$M
        label=$cmd; [ "$cmd" = states ] && label="states --format json"
        echo "| $shape | $n | $((bytes / 1024)) | $threads | $states | \`$label\` | $T | $C | $M | $gt | $gm |"
    done
done <"$dir/sizes.txt"
echo
echo "runs per cell: $RUNS (medians); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
