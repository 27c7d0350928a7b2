//! B4: one WASM tool call in process (a fresh instance from the `InstancePre`, the export, the
//! result), against the same `echo` answered by the native fixture backend; both through the
//! `Backend` port with the same fake client.
//!
//! `cargo bench -p berth-runtime-wasm --bench b4` (results in docs/benchmarks.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]
#![allow(clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::backend::{Backend, BackendRequest, Peer};
use berth_runtime_wasm::{ServerSpec, WasmRuntime, WasmSettings};
use berth_test_support::fixture::{FixtureBackend, ScriptedPeer};
use serde_json::json;

const CALLS: usize = 5_000;
const ROUNDS: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
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

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let bytes = std::fs::read(berth_test_support::guests::guest("berth_example_classic")).unwrap();
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let wasm = WasmRuntime::new(WasmSettings::default()).unwrap();
        let component = wasm.load(&sha, &bytes).await.unwrap();
        let guest: Arc<dyn Backend> = wasm.server(component, ServerSpec::default());
        let native: Arc<dyn Backend> = Arc::new(FixtureBackend::new());
        let peer = ScriptedPeer::modern().shared();
        // Warm up both paths.
        measure(&guest, &peer).await;
        measure(&native, &peer).await;
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
            "median over {ROUNDS} rounds of {CALLS} calls: WASM call p50 {:?}; added over the native echo p50 {:?}",
            wasm_p50[ROUNDS / 2],
            added[ROUNDS / 2]
        );
    });
}
