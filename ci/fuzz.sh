#!/usr/bin/env bash
# Coverage-guided fuzzing of the classifier, the table loader and the wire framing (not part
# of ci/test.sh).
# Usage: ci/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (default 60 s; every target)
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
# The table loader's seed is built from its checked-in source, so that it is always of the
# format version this tree reads.
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p pgate-compile --bin pgate-compile
mkdir -p seeds/load_table
"$ROOT/target/release/pgate-compile" build seeds/load_table-src/tiny.kdl -o seeds/load_table/tiny.pgt >/dev/null
targets=("${@:2}")
[ ${#targets[@]} -gt 0 ] || targets=(classify load_table wire)
for target in "${targets[@]}"; do
    log "fuzzing $target for ${secs}s"
    dict=()
    [ -f "$ROOT/core/fuzz/$target.dict" ] && dict=(-dict="$ROOT/core/fuzz/$target.dict")
    # New inputs go to corpus/<target> (not in git); the small seed sets in seeds/<target>
    # are checked in and read only.
    mkdir -p "corpus/$target"
    "${fuzz[@]}" run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 "${dict[@]}"
done
