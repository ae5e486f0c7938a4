//! The allocator's own account of the process's memory, shown on `/metrics` beside the
//! apiserver's figures: what the program holds (`allocated`), the pages holding it (`active`),
//! the allocator's bookkeeping (`metadata`), what it has resident (`resident`) and what it keeps
//! mapped after giving the pages back (`retained`). Resident minus allocated is the allocator's
//! slack: the part of a process's memory that smaller objects alone do not take off.

/// The figures as Prometheus gauges; one that jemalloc cannot give is left out (and logged).
#[cfg(feature = "jemalloc")]
pub fn render() -> String {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc refreshes the figures it reports when its epoch advances.
    if let Err(e) = epoch::advance() {
        tracing::debug!(error = %e, "the allocator's statistics could not be refreshed");
        return String::new();
    }
    let figures = [
        (
            "ferry_heap_allocated_bytes",
            "Bytes the process has allocated and not freed (jemalloc stats.allocated).",
            stats::allocated::read(),
        ),
        (
            "ferry_heap_active_bytes",
            "Bytes in the allocator's pages that hold allocations (stats.active).",
            stats::active::read(),
        ),
        (
            "ferry_heap_metadata_bytes",
            "Bytes of the allocator's own bookkeeping (stats.metadata).",
            stats::metadata::read(),
        ),
        (
            "ferry_heap_resident_bytes",
            "Bytes the allocator has resident: allocations, slack and bookkeeping (stats.resident).",
            stats::resident::read(),
        ),
        (
            "ferry_heap_retained_bytes",
            "Bytes the allocator keeps mapped after giving their pages back (stats.retained).",
            stats::retained::read(),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in figures {
        match value {
            Ok(value) => out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            )),
            Err(e) => tracing::debug!(metric = name, error = %e, "a heap figure could not be read"),
        }
    }
    out
}

/// Built with the system allocator (for a heap profiler), the process has no figures to add.
#[cfg(not(feature = "jemalloc"))]
pub fn render() -> String {
    String::new()
}
