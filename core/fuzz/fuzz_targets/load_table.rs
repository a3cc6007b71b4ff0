//! Any bytes given to the decision-table loader are rejected or accepted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pgate_core::table::Table::parse(data);
});
