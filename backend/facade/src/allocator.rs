//! The allocator's own figures on `/metrics`, read at each scrape: what the facade's live
//! allocations take, the pages that hold them, and the allocator's bookkeeping. They tell a
//! leak (the first grows) from memory the allocator keeps (the resident set stays while the
//! first falls), which the process's resident size alone cannot.
//!
//! Only when the binary allocates with jemalloc (`main.rs` says so through
//! [`jemalloc_is_the_allocator`]); a build on the system allocator (the tests) shows none.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::gauge::ConstGauge,
    registry::{Registry, Unit},
};

static JEMALLOC: AtomicBool = AtomicBool::new(false);

/// Tells the facade that its process allocates with jemalloc, so that [`register`] adds the
/// allocator's figures. Call it before building the application.
pub fn jemalloc_is_the_allocator() {
    JEMALLOC.store(true, Ordering::Relaxed);
}

/// Registers `allocator_*_bytes` when jemalloc is the allocator.
pub(crate) fn register(registry: &mut Registry) {
    if JEMALLOC.load(Ordering::Relaxed) {
        registry.register_collector(Box::new(Jemalloc));
    }
}

#[derive(Debug)]
struct Jemalloc;

impl Collector for Jemalloc {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use tikv_jemalloc_ctl::{epoch, stats};
        // The figures are a snapshot taken when the epoch advances.
        if epoch::advance().is_err() {
            return Ok(());
        }
        let figures: [(&str, &str, tikv_jemalloc_ctl::Result<usize>); 4] = [
            (
                "allocator_allocated",
                "Bytes in the facade's live allocations",
                stats::allocated::read(),
            ),
            (
                "allocator_active",
                "Bytes of the pages that hold live allocations, the free room among them included",
                stats::active::read(),
            ),
            (
                "allocator_metadata",
                "Bytes of the allocator's own bookkeeping (kept once made)",
                stats::metadata::read(),
            ),
            (
                "allocator_resident",
                "Bytes of the allocator's pages in memory, at most (live, free and not yet \
                 returned, bookkeeping)",
                stats::resident::read(),
            ),
        ];
        for (name, help, value) in figures {
            let Ok(value) = value else { continue };
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric =
                encoder.encode_descriptor(name, help, Some(&Unit::Bytes), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
