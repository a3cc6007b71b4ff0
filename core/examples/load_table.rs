//! Loads and validates a `.pgt` file the way the data plane does, and reports how long it
//! took (best of several runs, after one to warm the page cache):
//!
//! ```text
//! cargo run --release -p pgate-core --example load_table -- FILE.pgt
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use pgate_core::table::TableFile;

fn main() {
    let path = std::env::args().nth(1).expect("usage: load_table FILE.pgt");
    let path = std::path::Path::new(&path);
    let mut best = Duration::MAX;
    let mut info = String::new();
    for _ in 0..6 {
        let t0 = Instant::now();
        let f = TableFile::open(path).expect("the table loads");
        let elapsed = t0.elapsed();
        best = best.min(elapsed);
        let t = f.table();
        info = format!(
            "{} bytes, {} roles, {} tables in {} classes",
            f.bytes().len(),
            t.role_count(),
            t.table_count(),
            t.class_count()
        );
    }
    println!(
        "load + validate: {:.1} ms ({info})",
        best.as_secs_f64() * 1e3
    );
}
