#!/usr/bin/env bash
# The table-scale benchmark: generated policies of growing size (the shape of
# compiler/benches/scale/gen.rs: 30 columns per table, 10 % of tables tagged pii, every role
# with five schema-glob allows, a column-restricted allow by tag, a named-table allow, a tag
# deny, transaction/session, function, mask, limit and rate rules, one invariant), each
# built, checked, loaded and diffed against a variant with one more rule. Prints the growth
# table (wall time and peak memory from /usr/bin/time, table size). A benchmark, not a test:
# nothing here fails on a number.
#
#   SCALE_SIZES="50x2000 200x20000 50x20000 1000x100000"   ROLESxTABLES, in order
#   SCALE_DIR=/tmp/pgate-scale                              where policies and tables go
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
SIZES=${SCALE_SIZES:-50x2000 50x20000 200x20000 1000x100000}
DIR=${SCALE_DIR:-/tmp/pgate-scale}
command -v /usr/bin/time >/dev/null || install_packages time
log "building pgate-compile and the generator (release)"
cargo build --release -q -p pgate-compile --bin pgate-compile --example scale_policy
cargo build --release -q -p pgate-core --example load_table
BIN=target/release
mkdir -p "$DIR"

measure() { # CMD… → "seconds KiB" (wall time, peak resident memory)
    /usr/bin/time -o "$DIR/time.out" -f '%e %M' "$@" >/dev/null 2>&1 || true
    tail -1 "$DIR/time.out"
}

printf '| roles × tables | classes | build s | build peak MiB | table MiB | check s | load + validate ms | diff s | diff peak MiB |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for size in $SIZES; do
    roles=${size%x*}
    tables=${size#*x}
    src="$DIR/$size"
    rm -rf "$src" "$src-b"
    "$BIN/examples/scale_policy" "$roles" "$tables" "$src"
    # The variant: one more rule in one role.
    cp -r "$src" "$src-b"
    sed -i '0,/^role "role1" {$/s//role "role1" {\n    allow "update" table="s0.*"/' "$src-b/roles.kdl"
    read -r build_s build_kb < <(measure "$BIN/pgate-compile" build "$src" -o "$src.pgt")
    "$BIN/pgate-compile" build "$src-b" -o "$src-b.pgt" >/dev/null 2>&1
    read -r check_s _ < <(measure "$BIN/pgate-compile" check "$src")
    read -r diff_s diff_kb < <(measure "$BIN/pgate-compile" diff "$src.pgt" "$src-b.pgt")
    load=$("$BIN/examples/load_table" "$src.pgt")
    load_ms=$(echo "$load" | sed -E 's/^load \+ validate: ([0-9.]+) ms.*/\1/')
    classes=$(echo "$load" | sed -E 's/.* in ([0-9]+) classes.*/\1/')
    bytes=$(stat -c %s "$src.pgt")
    awk -v r="$roles" -v t="$tables" -v c="$classes" -v bs="$build_s" -v bk="$build_kb" \
        -v by="$bytes" -v cs="$check_s" -v lm="$load_ms" -v ds="$diff_s" -v dk="$diff_kb" \
        'BEGIN { printf "| %s × %s | %s | %s | %.0f | %.1f | %s | %s | %s | %.0f |\n",
                 r, t, c, bs, bk / 1024, by / 1048576, cs, lm, ds, dk / 1024 }' 
done
