//! The `schoolgate-console` binary.
fn main() {}
