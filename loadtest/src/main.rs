//! pgate-loadtest: built in its own issue.
fn main() {
    eprintln!("pgate-loadtest: not built yet (see issue 5)");
    std::process::exit(2);
}
