#!/usr/bin/env bash
# Runs one fuzz target the way the campaign in docs/fuzzing.md did: libFuzzer with a memory
# cap (an unbounded allocation is a finding) and a per-input time limit (a hang is a finding),
# on the target's corpus under fuzz/corpus/ (seeds.sh fills it), crashes to fuzz/artifacts/.
# It stops the fuzzer once the process has used CPU_SECONDS of CPU time (not wall time: on a
# shared machine a niced fuzzer gets less than a whole core), and prints that time last.
# Leak detection is off: LeakSanitizer reports glibc's per-thread destructor list
# (__cxa_thread_atexit_impl, 32 bytes) as a leak; a leak is not a safety finding, and an
# unbounded allocation is still one through -malloc_limit_mb.
# Usage: fuzz/run.sh TARGET [CPU_SECONDS=600] [extra libFuzzer flags...]
# Environment: FUZZ_TARGET_DIR (default /var/cache/strata-fuzz/target), SANITIZER (default
# address; `none` when AddressSanitizer is unavailable).
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
target="$1"
cpu_limit="${2:-600}"
shift $(( $# < 2 ? $# : 2 ))
target_dir="${FUZZ_TARGET_DIR:-/var/cache/strata-fuzz/target}"
features=()
case "$target" in
    policy | source_*) features=(--features host) ;;
esac
cd "$fuzz"
mkdir -p "corpus/$target" "artifacts/$target"
RUSTC_BOOTSTRAP=1 cargo fuzz build "${features[@]}" --codegen-units 16 \
    --sanitizer "${SANITIZER:-address}" --target-dir "$target_dir" "$target"
bin="$target_dir/x86_64-unknown-linux-gnu/release/$target"

"$bin" "corpus/$target" -artifact_prefix="artifacts/$target/" \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 -detect_leaks=0 \
    -max_total_time=$(( cpu_limit * 20 )) "$@" &
pid=$!
ticks=$(getconf CLK_TCK)
cpu=0
while kill -0 "$pid" 2>/dev/null; do
    # utime + stime of the whole process (all threads): fields 14 and 15 of /proc/PID/stat,
    # the 12th and 13th after the command name.
    if stat=$(cat "/proc/$pid/stat" 2>/dev/null); then
        cpu=$(awk -v t="$ticks" -v s="${stat##*) }" 'BEGIN { split(s, f, " "); print int((f[12] + f[13]) / t) }')
    fi
    if (( cpu >= cpu_limit )); then
        kill -INT "$pid"
        break
    fi
    sleep 2
done
status=0
wait "$pid" || status=$?
echo "fuzz-run: target=$target cpu_seconds=$cpu exit=$status"
exit "$status"
