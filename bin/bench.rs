//! Load generator (placeholder until the benchmark tool lands).
fn main() {}
