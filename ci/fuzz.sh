#!/usr/bin/env bash
# Coverage-guided fuzzing of the classifier and the table loader (not part of ci/test.sh).
# Usage: ci/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
source "$(dirname "$0")/lib.sh"
cd "$ROOT/core/fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly-only flags; the machines carry one stable toolchain.
export RUSTC_BOOTSTRAP=1
for target in classify load_table; do
    log "fuzzing $target for ${secs}s"
    cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048
done
