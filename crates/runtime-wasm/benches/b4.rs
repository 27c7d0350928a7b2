//! B4: the WASM tool call, in process.
//!
//! 1. **Whole call**: one WASM tool call (a fresh instance from the `InstancePre`, the export,
//!    the result) through the `Backend` port, against the same `echo` answered by the native
//!    fixture backend, both with the same fake client.
//! 2. **Instantiation alone**: a new store and `InstancePre::instantiate_async` of the same
//!    component (the classic example), on an engine configured as Berth's (`engine.rs`: pooling
//!    allocator with the same limits, epoch interruption, the same stack sizes), against the
//!    same with wasmtime's default on-demand allocator. The store carries a WASI context like
//!    Berth's; imports other than WASI are defined as traps (instantiation calls none of them).
//! 3. **Epoch deadline cost**: the same CPU-bound guest function (a tight integer loop, the
//!    worst case: one epoch check per loop iteration) on two engines that differ only in
//!    `epoch_interruption`, the epoch-on one with a ticker every 5 ms and a yield at every tick
//!    as Berth's stores do, runs interleaved A B A B.
//!
//! `cargo bench -p berth-runtime-wasm --bench b4` (results in docs/benchmarks.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]
#![allow(clippy::cast_precision_loss)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_core::backend::{Backend, BackendRequest, Peer};
use berth_runtime_wasm::{ServerSpec, WasmRuntime, WasmSettings};
use berth_test_support::fixture::{FixtureBackend, ScriptedPeer};
use serde_json::json;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

// The allocator the `berth` binary ships with (`berth::Allocator`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CALLS: usize = 5_000;
const ROUNDS: usize = 3;
/// Instantiations per round and allocator.
const INSTANTIATIONS: usize = 10_000;
/// Rounds of the epoch comparison (each runs the loop once per engine).
const EPOCH_ROUNDS: usize = 7;
/// Iterations of the guest loop per run.
const LOOP_ITERATIONS: i64 = 200_000_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

async fn measure(backend: &Arc<dyn Backend>, peer: &Arc<ScriptedPeer>) -> (Duration, Duration, f64) {
    let mut samples = Vec::with_capacity(CALLS);
    let started = Instant::now();
    for i in 0..CALLS {
        let mut params = serde_json::Map::new();
        params.insert("name".into(), json!("echo"));
        params.insert("arguments".into(), json!({"message": format!("hello {i}")}));
        let request = BackendRequest { method: "tools/call".into(), params };
        let t = Instant::now();
        let result = backend.handle(request, peer.clone() as Arc<dyn Peer>).await.unwrap();
        samples.push(t.elapsed());
        assert!(result.to_string().contains("hello"));
    }
    let rate = CALLS as f64 / started.elapsed().as_secs_f64();
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), rate)
}

/// Part 1: the whole call through the `Backend` port, WASM vs native.
async fn whole_call(bytes: &[u8]) {
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    };
    // Calls back to back, each instantiating on its own path: an instance made ahead (B1 runs
    // with them) would race the next call here and hide instantiation in some calls only.
    let wasm = WasmRuntime::new(WasmSettings { ready_instances: 0, ..WasmSettings::default() }).unwrap();
    let component = wasm.load(&sha, bytes).await.unwrap();
    let guest: Arc<dyn Backend> = wasm.server(component, ServerSpec::default());
    let native: Arc<dyn Backend> = Arc::new(FixtureBackend::new());
    let peer = ScriptedPeer::modern().shared();
    // Warm up both paths.
    measure(&guest, &peer).await;
    measure(&native, &peer).await;
    println!("## 1. whole call through the Backend port (classic example `echo`)");
    println!("round | wasm p50 | wasm p99 | wasm calls/s | native p50 | native p99 | native calls/s");
    let mut wasm_p50 = Vec::new();
    let mut added = Vec::new();
    for round in 1..=ROUNDS {
        let (wp50, wp99, wrate) = measure(&guest, &peer).await;
        let (np50, np99, nrate) = measure(&native, &peer).await;
        println!("{round} | {wp50:?} | {wp99:?} | {wrate:.0} | {np50:?} | {np99:?} | {nrate:.0}");
        wasm_p50.push(wp50);
        added.push(wp50.saturating_sub(np50));
    }
    wasm_p50.sort();
    added.sort();
    println!(
        "median over {ROUNDS} rounds of {CALLS} calls: WASM call p50 {:?}; added over the native echo p50 {:?}\n",
        wasm_p50[ROUNDS / 2],
        added[ROUNDS / 2]
    );
}

/// Berth's engine configuration (`berth_runtime_wasm::engine_config`, default `WasmSettings`),
/// or the same with wasmtime's on-demand allocator, and epoch interruption on or off.
fn berth_config(pooling: bool, epoch: bool) -> Config {
    let mut config = berth_runtime_wasm::engine_config(&WasmSettings::default());
    config.epoch_interruption(epoch);
    if !pooling {
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    }
    config
}

/// A store's data as in Berth: a WASI context (no preopens, no sockets) and a resource table.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn new_state() -> State {
    let wasi = WasiCtx::builder().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
    State { wasi, table: ResourceTable::new() }
}

fn instance_pre(engine: &Engine, bytes: &[u8]) -> InstancePre<State> {
    let component = Component::new(engine, bytes).unwrap();
    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    // `wasi:http` and `berth:mcp`: instantiation calls none of them.
    linker.define_unknown_imports_as_traps(&component).unwrap();
    linker.instantiate_pre(&component).unwrap()
}

/// Sorted samples of one allocator's instantiations.
struct Instantiations {
    /// `Store::new` + `instantiate_async` (the WASI context made beforehand).
    alone: Vec<Duration>,
    /// The same plus making the WASI context and resource table.
    with_ctx: Vec<Duration>,
    /// The same plus dropping the store (the instance's slot returns to the pool).
    with_teardown: Vec<Duration>,
}

/// `INSTANTIATIONS` × (WASI context, new store, instantiate, drop), one at a time.
async fn instantiations(engine: &Engine, pre: &InstancePre<State>) -> Instantiations {
    let mut out = Instantiations {
        alone: Vec::with_capacity(INSTANTIATIONS),
        with_ctx: Vec::with_capacity(INSTANTIATIONS),
        with_teardown: Vec::with_capacity(INSTANTIATIONS),
    };
    for _ in 0..INSTANTIATIONS {
        let t0 = Instant::now();
        let state = new_state();
        let t1 = Instant::now();
        let mut store = Store::new(engine, state);
        store.set_epoch_deadline(1);
        pre.instantiate_async(&mut store).await.unwrap();
        let t2 = Instant::now();
        drop(store);
        let t3 = Instant::now();
        out.alone.push(t2 - t1);
        out.with_ctx.push(t2 - t0);
        out.with_teardown.push(t3 - t0);
    }
    out.alone.sort();
    out.with_ctx.sort();
    out.with_teardown.sort();
    out
}

/// Part 2: instantiation alone, pooling + `InstancePre` vs on-demand + `InstancePre`.
async fn instantiation(bytes: &[u8]) {
    let pooled = Engine::new(&berth_config(true, true)).unwrap();
    let on_demand = Engine::new(&berth_config(false, true)).unwrap();
    let pooled_pre = instance_pre(&pooled, bytes);
    let on_demand_pre = instance_pre(&on_demand, bytes);
    // Warm up.
    instantiations(&pooled, &pooled_pre).await;
    instantiations(&on_demand, &on_demand_pre).await;
    println!("## 2. instantiation (Store::new + InstancePre::instantiate_async of the classic example)");
    println!(
        "round | pooling p50 | pooling p99 | p99 incl. WASI ctx | p99 incl. ctx + teardown | on-demand p50 | on-demand p99 | on-demand p99 incl. ctx + teardown | on-demand ÷ pooling p50"
    );
    let (mut p50s, mut p99s, mut ctx99s, mut speedups) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let p = instantiations(&pooled, &pooled_pre).await;
        let o = instantiations(&on_demand, &on_demand_pre).await;
        let (p50, p99) = (percentile(&p.alone, 0.5), percentile(&p.alone, 0.99));
        let speedup = percentile(&o.alone, 0.5).as_secs_f64() / p50.as_secs_f64();
        println!(
            "{round} | {} | {} | {} | {} | {} | {} | {} | {speedup:.1}",
            micros(p50),
            micros(p99),
            micros(percentile(&p.with_ctx, 0.99)),
            micros(percentile(&p.with_teardown, 0.99)),
            micros(percentile(&o.alone, 0.5)),
            micros(percentile(&o.alone, 0.99)),
            micros(percentile(&o.with_teardown, 0.99)),
        );
        p50s.push(p50.as_secs_f64() * 1e6);
        p99s.push(p99.as_secs_f64() * 1e6);
        ctx99s.push(percentile(&p.with_ctx, 0.99).as_secs_f64() * 1e6);
        speedups.push(speedup);
    }
    println!(
        "median over {ROUNDS} rounds of {INSTANTIATIONS}: pooling instantiate p50 {:.2} µs, p99 {:.2} µs (p99 {:.2} µs with the WASI context); on-demand ÷ pooling {:.1}×\n",
        median_f64(&mut p50s),
        median_f64(&mut p99s),
        median_f64(&mut ctx99s),
        median_f64(&mut speedups)
    );
}

/// Two CPU-bound guest functions: `count`, the tightest loop (an increment and a branch, the
/// worst case for the per-iteration epoch check), and `lcg`, a loop with a multiply-add chain.
const SPIN_WAT: &str = r#"
(module
  (func (export "count") (param $n i64) (result i64)
    (local $i i64)
    (loop $again
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $again (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $i))
  (func (export "lcg") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (loop $again
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005)) (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $again (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))
"#;

/// One run of the loop on `engine`; returns its wall time.
async fn spin_once(engine: &Engine, module: &Module, epoch: bool, function: &str) -> (Duration, i64) {
    let mut store = Store::new(engine, ());
    if epoch {
        // As Berth's stores: a deadline one tick ahead, a yield to the executor at every tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    }
    let instance = wasmtime::Instance::new_async(&mut store, module, &[]).await.unwrap();
    let spin = instance.get_typed_func::<i64, i64>(&mut store, function).unwrap();
    let t = Instant::now();
    let out = spin.call_async(&mut store, LOOP_ITERATIONS).await.unwrap();
    (t.elapsed(), out)
}

/// Part 3: epoch interruption on vs off, the same CPU-bound function.
async fn epoch_cost() {
    let off = Engine::new(&berth_config(true, false)).unwrap();
    let on = Engine::new(&berth_config(true, true)).unwrap();
    let wasm = wat::parse_str(SPIN_WAT).unwrap();
    let module_off = Module::new(&off, &wasm).unwrap();
    let module_on = Module::new(&on, &wasm).unwrap();
    // The ticker, as Berth's (`engine.rs`): the epoch advances every 5 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (engine, stop) = (on.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                engine.increment_epoch();
            }
        })
    };
    // Warm up.
    spin_once(&off, &module_off, false, "count").await;
    spin_once(&on, &module_on, true, "count").await;
    println!("## 3. epoch deadline on a CPU-bound guest ({LOOP_ITERATIONS} loop iterations per run)");
    println!(
        "round | count: epoch off | count: epoch on | count: on ÷ off | lcg: epoch off | lcg: epoch on | lcg: on ÷ off"
    );
    let (mut count, mut lcg) = (Vec::new(), Vec::new());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for round in 1..=EPOCH_ROUNDS {
        let (c_off, a) = spin_once(&off, &module_off, false, "count").await;
        let (c_on, b) = spin_once(&on, &module_on, true, "count").await;
        assert_eq!(a, b);
        let (l_off, a) = spin_once(&off, &module_off, false, "lcg").await;
        let (l_on, b) = spin_once(&on, &module_on, true, "lcg").await;
        assert_eq!(a, b);
        let (rc, rl) = (c_on.as_secs_f64() / c_off.as_secs_f64(), l_on.as_secs_f64() / l_off.as_secs_f64());
        println!(
            "{round} | {:.1} ms | {:.1} ms | {rc:.3} | {:.1} ms | {:.1} ms | {rl:.3}",
            ms(c_off),
            ms(c_on),
            ms(l_off),
            ms(l_on)
        );
        count.push(rc);
        lcg.push(rl);
    }
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    println!(
        "median over {EPOCH_ROUNDS} rounds: epoch on ÷ off {:.3} (count, the worst case), {:.3} (lcg)\n",
        median_f64(&mut count),
        median_f64(&mut lcg)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("B4, load average at start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
        let bytes = std::fs::read(berth_test_support::guests::guest("berth_example_classic")).unwrap();
        let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
        if run("call") {
            whole_call(&bytes).await;
        }
        if run("instantiate") {
            instantiation(&bytes).await;
        }
        if run("epoch") {
            epoch_cost().await;
        }
    });
}
