//! Link options of the `ferry` binary.
//!
//! Relative relocations are packed (`DT_RELR`, glibc 2.36+, binutils 2.38+): the position-
//! independent binary keeps its address randomisation, but the dynamic loader reads a few
//! kilobytes of relocations at start instead of 1.8 MB (77,000 entries of 24 bytes), which every
//! `ferry` process otherwise keeps resident. Measured on `ferry node` idle: see README,
//! "Pods run for real".

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu && std::env::var_os("FERRY_NO_PACKED_RELOCS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-env-changed=FERRY_NO_PACKED_RELOCS");
}
