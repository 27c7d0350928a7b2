//! The wasmtime engine and linker: every engine flag Berth uses is set here and nowhere else.
//!
//! - Pooling allocator sized from [`WasmSettings`]: `max_instances` component instances, each
//!   with linear memories of at most `max_memory_bytes` (the per-store limiter in `store.rs`
//!   caps the total).
//! - Epoch interruption, with a ticker thread that advances the epoch every [`EPOCH_TICK`]; each
//!   store yields at every tick and is interrupted at its deadline.
//! - A bounded wasm stack ([`MAX_WASM_STACK`]) so runaway recursion traps cleanly.
//! - wasmtime's own compilation cache in `cache_dir`: compiled code is stored on disk keyed by
//!   a SHA-256 of the component's bytes and the engine's compilation settings, under a directory
//!   named after the wasmtime version.
//!
//! The linker provides WASI 0.2 (clocks, random, stdio, and filesystem/environment with nothing
//! in them), `wasi:http` (outgoing requests through the egress hooks), and the `berth:mcp`
//! imports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::WasmSettings;
use crate::bindings::McpServer;
use crate::error::{Error, Result};
use crate::store::CallState;

/// How often the engine's epoch advances.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);
/// The most native stack a guest may use; deeper recursion traps with a stack overflow.
pub(crate) const MAX_WASM_STACK: usize = 512 * 1024;
/// The stack of each call's fiber: the wasm stack plus room for host frames.
const ASYNC_STACK: usize = MAX_WASM_STACK + 1024 * 1024;
/// Every call starts a fresh instance, so resetting a slot is on the hot path. When an instance
/// ends, up to this many bytes of its linear memory are reset in place instead of being handed
/// back to the kernel (`madvise`) and faulted in again by the next call; with the
/// `PAGEMAP_SCAN` ioctl (Linux 6.7+, used when available) only the pages the call dirtied are
/// reset, wherever they are (a Rust guest's stack sits below its heap, at the 1 MiB mark).
/// Without the ioctl the low bytes would be reset whether dirtied or not (a 2 MiB `memset` per
/// call costs more than the page faults it saves), so older kernels keep wasmtime's `madvise`.
const MEMORY_KEEP_RESIDENT: usize = 2 * 1024 * 1024;
/// Bytes of a slot's tables reset in place (a table is small; resetting it is a short `memset`).
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// Core instances, memories and tables one component may have (a Rust component has a few of
/// each: the main module and the shims that `wasm-component-ld` adds).
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 16;

/// The engine configuration for `settings`, without the compilation cache: the pooling
/// allocator and every flag Berth sets. Public so that benchmark B4 measures exactly this.
pub fn engine_config(settings: &WasmSettings) -> Config {
    let slots = settings.max_instances.max(1);
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(settings.max_memory_bytes)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    // Probed on this host (Linux 6.7+, and not filtered by a sandbox).
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pooling.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT).pagemap_scan(Enabled::Yes);
    }

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(ASYNC_STACK)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// Builds the engine for `settings`, with a handle on its compilation cache (if any) for the
/// hit and miss counters.
pub(crate) fn build_engine(settings: &WasmSettings) -> Result<(Engine, Option<Cache>)> {
    let mut config = engine_config(settings);
    let mut compile_cache = None;
    if let Some(dir) = &settings.cache_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("cannot create the cache directory {}: {e}", dir.display())))?;
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        let cache = Cache::new(cache).map_err(|e| Error::Engine(format!("cannot use the compilation cache: {e}")))?;
        // A clone shares the counters.
        config.cache(Some(cache.clone()));
        compile_cache = Some(cache);
    }
    let engine = Engine::new(&config).map_err(|e| Error::Engine(e.to_string()))?;
    Ok((engine, compile_cache))
}

/// The linker every component is instantiated with.
pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    let engine_error = |e: wasmtime::Error| Error::Engine(format!("cannot link the host interfaces: {e}"));
    // Sockets are linked too (with every use denied in `store.rs`), but validation rejects
    // components that import them.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
    McpServer::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state).map_err(engine_error)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own, until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub(crate) fn start(engine: EngineWeak) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("berth-wasm-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
