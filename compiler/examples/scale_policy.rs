//! Writes a generated large policy (catalog + roles) for the scale benchmarks:
//!
//! ```text
//! cargo run --release -p pgate-compile --example scale_policy -- ROLES TABLES DIR
//! ```
//!
//! `DIR/catalog-NNN.kdl` and `DIR/roles.kdl`, the shape in `benches/scale/gen.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/scale/gen.rs"]
mod generated;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [roles, tables, dir] = args.as_slice() else {
        eprintln!("usage: scale_policy ROLES TABLES DIR");
        std::process::exit(2);
    };
    let shape = generated::Shape {
        roles: roles.parse().expect("ROLES is a number"),
        tables: tables.parse().expect("TABLES is a number"),
    };
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("create DIR");
    for (name, text) in shape.catalog_files() {
        std::fs::write(dir.join(name), text).expect("write a catalog file");
    }
    std::fs::write(dir.join("roles.kdl"), shape.roles()).expect("write roles.kdl");
}
