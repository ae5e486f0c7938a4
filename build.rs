//! Link options of the `ferry` binary.
//!
//! Relative relocations are packed (`DT_RELR`, glibc 2.36+, binutils 2.38+): the position-
//! independent binary keeps its address randomisation, but the dynamic loader reads a few
//! kilobytes of relocations at start instead of 1.8 MB (77,000 entries of 24 bytes), which every
//! `ferry` process otherwise keeps resident. Measured on `ferry node` idle: see README,
//! "Pods run for real".
//!
//! Release builds lay the functions an idle node agent runs side by side
//! (`ops/link/ferry.order`, made by `ops/link/order.sh`, passed to lld's
//! `--symbol-ordering-file`). The kernel maps a program's code 64 KB around each page it
//! touches; scattered over the 42 MB of code, the agent's few thousand functions kept 14 MB of
//! it resident, laid together about 5 MB. Only on x86_64 Linux with glibc, where rustc links
//! with its own lld; `FERRY_NO_SYMBOL_ORDER=1` leaves it out (another linker refuses the
//! option).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    let linux_gnu =
        target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu";
    if linux_gnu && std::env::var_os("FERRY_NO_PACKED_RELOCS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-env-changed=FERRY_NO_PACKED_RELOCS");

    let order = std::path::Path::new(&target("CARGO_MANIFEST_DIR")).join("ops/link/ferry.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=FERRY_NO_SYMBOL_ORDER");
    if linux_gnu
        && target("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && target("PROFILE") == "release"
        && order.is_file()
        && std::env::var_os("FERRY_NO_SYMBOL_ORDER").is_none()
    {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Names of an older build that are gone are skipped, not reported one by one.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
