#!/usr/bin/env bash
# Coverage-guided fuzzing of the classifier, the table loader and the wire framing (not part
# of ci/test.sh).
# Usage: ci/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
source "$(dirname "$0")/lib.sh"
cd "$ROOT/core/fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly flags (-Zsanitizer): use a nightly toolchain when the machine has
# one, else let the pinned stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
for target in classify load_table wire; do
    log "fuzzing $target for ${secs}s"
    dict=()
    [ -f "$ROOT/core/fuzz/$target.dict" ] && dict=(-dict="$ROOT/core/fuzz/$target.dict")
    "${fuzz[@]}" run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 "${dict[@]}"
done
