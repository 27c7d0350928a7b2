//! B3: memory per idle legacy session, a second wave after the first is deleted, and idle
//! reaping.
//!
//! Berth runs in its own process so its RSS (`/proc/<pid>/status` `VmRSS`) is the server's
//! alone (PostgreSQL runs in separate processes). An idle session is one that completed
//! `initialize` + `notifications/initialized` and holds no GET stream (a session with a live
//! stream is never idle by Berth's definition). Reaping is observed without disturbing it:
//! every session is probed (`ping`) at most once, since a probe of a live session counts as
//! activity; disjoint samples are probed at increasing times and the rest at the deadline
//! (idle timeout + one sweep interval after the last session's last request).

use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::client::{Raw, berth_endpoint};
use crate::harness::{Pinning, Server};
use crate::stats::{Table, f1, int, verdict};

/// Berth's sweep interval: `SessionConfig::new` sets 15 s and `Settings` cannot change it.
const SWEEP_SECS: u64 = 15;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Sessions per wave.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// `session_idle_secs` for the run (long enough that no session idles out while a wave is
    /// being opened and measured).
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Concurrent openers.
    #[arg(long, default_value_t = 32)]
    openers: usize,
    /// Seconds to let the process settle before each RSS reading.
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
}

/// Opens `n` sessions on `width` connections.
async fn wave(url: &str, key: &str, n: usize, width: usize) -> anyhow::Result<(Vec<(Raw, String)>, Duration)> {
    let clients: Vec<Raw> = (0..width).map(|_| Raw::new(url, Some(key))).collect();
    let start = Instant::now();
    let per = n.div_ceil(width);
    let runs = join_all(clients.iter().enumerate().map(|(i, c)| async move {
        let count = per.min(n.saturating_sub(i * per));
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(c.open().await?);
        }
        anyhow::Ok(ids)
    }))
    .await;
    let took = start.elapsed();
    let mut out = Vec::with_capacity(n);
    for (c, ids) in clients.iter().zip(runs) {
        out.extend(ids?.into_iter().map(|id| (c.clone(), id)));
    }
    Ok((out, took))
}

/// Runs `f` over clones of `items`, `width` at a time; returns the results in order.
async fn each<T, F, Fut, R>(items: &[T], width: usize, f: F) -> Vec<R>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let chunk = items.len().div_ceil(width.max(1)).max(1);
    let runs = join_all(items.chunks(chunk).map(|part| {
        let f = &f;
        async move {
            let mut out = Vec::with_capacity(part.len());
            for item in part {
                out.push(f(item.clone()).await);
            }
            out
        }
    }))
    .await;
    runs.into_iter().flatten().collect()
}

/// Pings each session once: true when the session is gone (404), false when it answered.
async fn probe(sessions: &[(Raw, String)], width: usize) -> (usize, usize, usize) {
    let outcomes = each(sessions, width, |(c, id)| async move {
        match c.call(&id, 9, "ping", serde_json::json!({})).await {
            Ok(reply) if reply.status == 404 => 1,
            Ok(reply) if reply.status == 200 => 0,
            _ => 2,
        }
    })
    .await;
    let gone = outcomes.iter().filter(|o| **o == 1).count();
    let alive = outcomes.iter().filter(|o| **o == 0).count();
    (gone, alive, outcomes.len() - gone - alive)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub(crate) async fn run(args: &Args, pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let admin_token = format!("berth_admin_bench_{}", uuid::Uuid::new_v4().simple());
    let n = args.sessions.max(1);
    eprintln!("B3: starting Berth (private PostgreSQL cluster), idle timeout {} s...", args.idle_secs);
    let berth = Server::spawn(
        "b3-berth",
        &[
            "berth".into(),
            "--admin-token".into(),
            admin_token.clone(),
            "--max-sessions".into(),
            (4 * n).to_string(),
            "--idle-secs".into(),
            args.idle_secs.to_string(),
        ],
        pinning,
    )?;
    let ep = berth_endpoint(&berth.base(), &admin_token).await?;
    let settle = Duration::from_secs(args.settle_secs);

    // Warm-up: open and delete a few hundred sessions so allocator arenas and caches exist.
    let (warm, _) = wave(&ep.url, &ep.key, 500, args.openers).await?;
    each(&warm, 16, |(c, id)| async move { c.delete(&id).await }).await;
    tokio::time::sleep(settle).await;
    let rss0 = berth.rss_kib()?;

    eprintln!("B3: wave 1 ({n} sessions)...");
    let (wave1, took1) = wave(&ep.url, &ep.key, n, args.openers).await?;
    tokio::time::sleep(settle).await;
    let rss1 = berth.rss_kib()?;

    eprintln!("B3: deleting wave 1...");
    let deleted = each(&wave1, 16, |(c, id)| async move { c.delete(&id).await }).await;
    let delete_ok = deleted.iter().filter(|r| matches!(r, Ok(200))).count();
    tokio::time::sleep(settle).await;
    // The deleted sessions must be gone (404), checked on a sample.
    let sample: Vec<(Raw, String)> = wave1.iter().step_by((n / 100).max(1)).cloned().collect();
    let (gone_sample, _, _) = probe(&sample, 16).await;
    let rss_deleted = berth.rss_kib()?;

    eprintln!("B3: wave 2 ({n} sessions)...");
    let (wave2, took2) = wave(&ep.url, &ep.key, n, args.openers).await?;
    let last_activity = Instant::now();
    tokio::time::sleep(settle).await;
    let rss2 = berth.rss_kib()?;

    // Reaping: disjoint samples probed once each at increasing times, then everything left at
    // the deadline. The first sample, before the idle timeout, must still be alive.
    let idle = Duration::from_secs(args.idle_secs);
    let deadline = idle + Duration::from_secs(SWEEP_SECS) + Duration::from_secs(1);
    let mut checkpoints: Vec<Duration> = Vec::new();
    if args.idle_secs > args.settle_secs + 3 {
        checkpoints.push(idle - Duration::from_secs(3));
    }
    for extra in [1u64, 5, 10] {
        let t = idle + Duration::from_secs(extra);
        if t < deadline {
            checkpoints.push(t);
        }
    }
    let sample_size = (n / 50).max(1);
    let mut remaining = wave2;
    let mut reap_rows = Vec::new();
    eprintln!("B3: waiting for the idle sweep (deadline {} s after the last request)...", deadline.as_secs());
    for at in checkpoints {
        if let Some(wait) = at.checked_sub(last_activity.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let take = sample_size.min(remaining.len());
        let sample: Vec<(Raw, String)> = remaining.drain(..take).collect();
        let t = last_activity.elapsed();
        let (gone, alive, other) = probe(&sample, 16).await;
        reap_rows.push((t, sample.len(), gone, alive, other));
    }
    if let Some(wait) = deadline.checked_sub(last_activity.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    let t_final = last_activity.elapsed();
    let (gone_final, alive_final, other_final) = probe(&remaining, 32).await;
    reap_rows.push((t_final, remaining.len(), gone_final, alive_final, other_final));
    let rss_reaped = berth.rss_kib()?;

    let per_session = (rss1.saturating_sub(rss0)) as f64 * 1024.0 / n as f64;
    let growth = (rss2 as f64 - rss1 as f64) / rss1 as f64 * 100.0;

    let mut table = Table::new(&["point", "RSS MiB", "sessions open", "note"]);
    table.row(vec!["baseline (after set-up and warm-up)".into(), mib(rss0), "0".into(), String::new()]);
    table.row(vec![
        "after wave 1".into(),
        mib(rss1),
        int(n as f64),
        format!("opened in {} ms ({}/s)", int(took1.as_secs_f64() * 1000.0), int(n as f64 / took1.as_secs_f64())),
    ]);
    table.row(vec![
        "after deleting wave 1".into(),
        mib(rss_deleted),
        "0".into(),
        format!("{delete_ok} DELETEs answered 200; sampled {gone_sample}/{} gone", sample.len()),
    ]);
    table.row(vec![
        "after wave 2".into(),
        mib(rss2),
        int(n as f64),
        format!("opened in {} ms ({}/s)", int(took2.as_secs_f64() * 1000.0), int(n as f64 / took2.as_secs_f64())),
    ]);
    table.row(vec!["after reaping".into(), mib(rss_reaped), "0 (expected)".into(), String::new()]);

    let mut reap = Table::new(&["seconds after last request", "sessions probed", "gone (404)", "alive (200)", "other"]);
    for (t, probed, gone, alive, other) in &reap_rows {
        reap.row(vec![f1(t.as_secs_f64()), probed.to_string(), gone.to_string(), alive.to_string(), other.to_string()]);
    }
    let early_ok = reap_rows.first().is_none_or(|(t, _, gone, _, _)| *t >= idle || *gone == 0);
    let reaped_ok = alive_final == 0 && other_final == 0 && early_ok;

    let mut targets = Table::new(&["target (perf-targets.md B3)", "measured", "verdict"]);
    targets.row(vec![
        format!("≤ 16 KiB RSS per idle session at {} sessions", int(n as f64)),
        format!("{} KiB", f1(per_session / 1024.0)),
        verdict(per_session <= 16.0 * 1024.0).into(),
    ]);
    targets.row(vec!["second wave grows RSS ≤ 10 %".into(), format!("{growth:+.1} %"), verdict(growth <= 10.0).into()]);
    targets.row(vec![
        "idle sessions reaped within idle timeout + one sweep".into(),
        format!(
            "{gone_final}/{} gone at {:.1} s (idle {} s + sweep {SWEEP_SECS} s)",
            remaining.len(),
            t_final.as_secs_f64(),
            args.idle_secs
        ),
        verdict(reaped_ok).into(),
    ]);

    println!("\nB3 idle legacy sessions held by Berth");
    println!("{header}");
    println!(
        "sessions per wave: {n}; idle timeout {} s; sweep interval {SWEEP_SECS} s (fixed in SessionConfig::new); server RSS from /proc/{}/status",
        args.idle_secs, berth.pid
    );
    println!("\n{}\n\n{}\n\n{}", table.render(), reap.render(), targets.render());
    println!(
        "\nB3 summary: {} KiB RSS per idle session, second wave {growth:+.1} % RSS, {gone_final}/{} idle sessions reaped by {:.1} s (idle {} s + sweep {SWEEP_SECS} s).",
        f1(per_session / 1024.0),
        remaining.len(),
        t_final.as_secs_f64(),
        args.idle_secs
    );
    Ok(())
}
