//! The `spuff` command-line tool.
fn main() {
    println!("spuff {}", env!("CARGO_PKG_VERSION"));
}
