#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for SECONDS_PER_TARGET (default 30),
# one target at a time on one core; fails on any crash, leak, timeout or OOM.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Stable toolchain only: cargo-fuzz passes -Zsanitizer=address, which RUSTC_BOOTSTRAP=1
# unlocks; the stable toolchain ships the AddressSanitizer runtime. If that build fails
# anyway, the targets are built without a sanitizer (still coverage-guided libFuzzer).
#
# New inputs the fuzzer finds go to a scratch directory, never into fuzz/corpus/ (the committed
# seeds); a crashing input is left in fuzz/artifacts/<target>/ and printed in hex.
# Environment: FUZZ_TARGETS="a b" runs only those targets.
set -euo pipefail

secs="${1:-30}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
started=$(date +%s)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

sanitizer=address
if ! cargo fuzz build --sanitizer address; then
    echo "fuzz.sh: AddressSanitizer build failed; building without a sanitizer" >&2
    sanitizer=none
    cargo fuzz build --sanitizer none
fi
host="$(rustc -vV | sed -n 's/^host: //p')"
bin="$root/fuzz/target/$host/release"
built=$(date +%s)

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary=()
failed=()
for t in $targets; do
    artifacts="$root/fuzz/artifacts/$t"
    mkdir -p "$scratch/$t" "$artifacts"
    # Replay the minimized crashes first: they must stay fixed.
    regressions=( $(ls "$root"/fuzz/regressions/"$t"-* 2>/dev/null || true) )
    if (( ${#regressions[@]} )) && ! "$bin/$t" "${regressions[@]}" >"$scratch/$t.replay.log" 2>&1; then
        tail -n 40 "$scratch/$t.replay.log"
        failed+=("$t (regression replay)")
        summary+=("$(printf '%-20s REGRESSION FAILED' "$t")")
        continue
    fi
    echo "fuzz.sh: $t for ${secs}s"
    t0=$(date +%s)
    set +e
    "$bin/$t" "$scratch/$t" "$root/fuzz/corpus/$t" \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$scratch/$t.log" 2>&1
    rc=$?
    set -e
    t1=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log" | tail -n 1)
    if (( rc != 0 )); then
        tail -n 60 "$scratch/$t.log"
        for f in $(grep -o "$artifacts/[^ ]*" "$scratch/$t.log" | sort -u); do
            [[ -f "$f" ]] && { echo "--- $f"; xxd "$f" | head -n 64; }
        done
        failed+=("$t")
        summary+=("$(printf '%-20s CRASH after %s execs in %ss' "$t" "${execs:-?}" "$((t1 - t0))")")
    else
        summary+=("$(printf '%-20s %10s execs in %ss' "$t" "${execs:-?}" "$((t1 - t0))")")
    fi
done

echo
echo "fuzz.sh: sanitizer=$sanitizer, install+build $((built - started))s, total $(( $(date +%s) - started ))s"
printf '  %s\n' "${summary[@]}"
if (( ${#failed[@]} )); then
    echo "fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: ${#summary[@]} passed, 0 failed"
