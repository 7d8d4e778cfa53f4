mod config;
mod convert;
mod expfmt;
mod point;
mod pushgateway;
fn main() {}
