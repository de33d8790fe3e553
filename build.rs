//! Compiles the small C helpers in `src/native/`: `long double` arithmetic
//! for INCRBYFLOAT, which has no Rust equivalent (see src/longdouble.rs).

fn main() {
    let source = "src/native/longdouble.c";
    println!("cargo:rerun-if-changed={source}");
    cc::Build::new().file(source).warnings(true).extra_warnings(true).compile("ferrokey_native");
}
