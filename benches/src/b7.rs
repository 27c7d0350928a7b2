//! B7: token checks on the data plane's request path, in process (no HTTP).
//!
//! - API key, cached: what a request with a key costs once the catalog holds its row: parse the
//!   key, look the prefix up in a `RwLock<HashMap>` (as the catalog does), SHA-256 the key and
//!   compare in constant time (`berth_auth::verify_api_key`).
//! - JWT, cached: `caller::Tokens` with the token verified and its grant confirmed in the last
//!   second: build the expected audience, two hash lookups, one clone of the principal.
//! - JWT, uncached: `berth_auth::jwt::verify` of a fresh token: header, key selection, signature
//!   (EdDSA with Ed25519, or RS256 with a 2048-bit key), claims and their checks.
//!
//! Cached checks are timed in batches (per-check time = batch time / batch size, since one
//! check is shorter than the clock's resolution allows timing alone); uncached ones singly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_auth::cache::TtlCache;
use berth_auth::jwt::{ACCESS_TOKEN_TYPE, AccessClaims, Expected, KeySet};
use berth_auth::{GeneratedKey, ParsedKey, StoredKey};
use berth_core::{ApiKey, ApiKeyId, GrantId, Principal, Scope, Slug, TenantId, TenantScope};
use berth_data_plane::caller::{Standing, Tokens, VerifiedToken};
use serde_json::{Map, Value, json};

use crate::harness::Pinning;
use crate::stats::{Latencies, Table, f2, median, verdict};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rounds; the four checks interleaved within each round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Batches of cached checks per round.
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Cached checks per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Uncached verifications per round and algorithm.
    #[arg(long, default_value_t = 2000)]
    verifies: usize,
}

const PUBLIC_URL: &str = "http://127.0.0.1:8080";
const RSA_KEY: &str = include_str!("../../tests/fixtures/rsa-test-key.pem");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> AccessClaims {
    let now = now();
    AccessClaims {
        iss: format!("{PUBLIC_URL}/t/acme"),
        sub: "01a1fd59-5556-712d-b49f-d7b36453602c".into(),
        aud: format!("{PUBLIC_URL}/t/acme/files/mcp"),
        exp: now + 600,
        iat: now,
        nbf: now,
        jti: "4fdcc549-6c6e-42dc-bb55-51541a3ef845".into(),
        client_id: "bc_zN8p7negTxSw678UfCddof".into(),
        scope: "mcp".into(),
        gid: GrantId::new().to_string(),
    }
}

/// Times `batches` batches of `batch` calls of `f`; per-call nanoseconds of each batch.
fn batched(batches: usize, batch: usize, mut f: impl FnMut() -> bool) -> Latencies {
    let mut lat = Latencies::with_capacity(batches);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..batch {
            assert!(std::hint::black_box(f()), "a check failed");
        }
        lat.push(start.elapsed() / u32::try_from(batch).unwrap_or(u32::MAX));
    }
    lat
}

fn single(n: usize, mut f: impl FnMut() -> bool) -> Latencies {
    let mut lat = Latencies::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        assert!(std::hint::black_box(f()), "a verification failed");
        lat.push(start.elapsed());
    }
    lat
}

pub(crate) async fn run(args: &Args, _pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    // API key: a stored row as the catalog would hold it.
    let generated = GeneratedKey::generate();
    let tenant = TenantScope::from_verified_credentials(TenantId::new(), Slug::parse("tenant", "acme")?);
    let stored = Arc::new(StoredKey {
        key: ApiKey {
            id: ApiKeyId::new(),
            tenant_id: tenant.tenant_id(),
            name: "bench".into(),
            prefix: generated.prefix.clone(),
            scopes: vec![Scope::Mcp],
            servers: None,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            created_at: chrono::Utc::now(),
        },
        tenant_slug: tenant.slug().clone(),
        tenant_enabled: true,
        secret_hash: generated.secret_hash.clone(),
        server_ids: None,
    });
    let catalog: TtlCache<String, Option<Arc<StoredKey>>> = TtlCache::new(Duration::from_secs(3600), 100_000);
    catalog.insert(generated.prefix.clone(), Some(stored));
    let key = generated.key.clone();
    let api_key = || {
        let Some(parsed) = ParsedKey::parse(&key) else { return false };
        let Some(Some(row)) = catalog.get(&parsed.prefix().to_owned()) else { return false };
        berth_auth::verify_api_key(&parsed, (*row).clone(), chrono::Utc::now()).is_ok()
    };

    // Berth's own token, verified once and remembered (the cache a data-plane node keeps).
    let ed = berth_auth::jwt::generate_signing_key();
    let ed_token = berth_auth::jwt::sign_access_token(&claims(), &ed.kid, &ed.pkcs8_der)?;
    let ed_keys = KeySet::from_jwks([&ed.public_jwk]);
    let pool = berth_storage::PgPoolOptions::new().connect_lazy("postgres://bench@127.0.0.1:1/unused")?;
    let tokens = Tokens::new(pool, &url::Url::parse(PUBLIC_URL)?);
    let c = claims();
    let grant: GrantId = c.gid.parse()?;
    // A standing is trusted for a second (then the real path re-reads the grant): seed it again
    // before each round of cached checks.
    let seed = || {
        tokens.remember(
            &ed_token,
            VerifiedToken {
                principal: Principal::Token {
                    tenant: tenant.clone(),
                    client_id: c.client_id.clone(),
                    subject: c.sub.clone(),
                    scopes: vec![Scope::Mcp],
                    audience: c.aud.clone(),
                },
                audience: c.aud.clone(),
                standing: Standing::Grant(tenant.tenant_id(), tenant.slug().clone(), grant),
            },
            c.exp,
        );
    };
    seed();
    let cached_jwt = || {
        let audience = tokens.urls().resource("acme", "files");
        tokens.verify_cached(&ed_token, &audience, now()).is_some()
    };

    // RS256: an external issuer's key (the test key of tests/fixtures).
    let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_KEY.as_bytes())?;
    let mut rsa_jwk =
        serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa, jsonwebtoken::Algorithm::RS256)?)?;
    rsa_jwk["kid"] = json!("rsa-1");
    let mut rs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    rs_header.kid = Some("rsa-1".into());
    let rs_token = jsonwebtoken::encode(&rs_header, &claims(), &rsa)?;
    let rs_keys = KeySet::from_jwks([&rsa_jwk]);
    let (iss, aud) = (c.iss.clone(), c.aud.clone());
    let own = Expected { issuer: &iss, audience: Some(&aud), typ: Some(ACCESS_TOKEN_TYPE), leeway_secs: 0 };
    let external = Expected { issuer: &iss, audience: Some(&aud), typ: None, leeway_secs: 30 };
    let eddsa = || berth_auth::jwt::verify::<AccessClaims>(&ed_token, &ed_keys, &own).is_ok();
    let rs256 = || berth_auth::jwt::verify::<Map<String, Value>>(&rs_token, &rs_keys, &external).is_ok();

    // Warm up every path (page faults, lazy statics) before timing.
    for _ in 0..10_000 {
        api_key();
        cached_jwt();
    }
    seed();
    for _ in 0..200 {
        eddsa();
        rs256();
    }

    let names = ["API key, cached", "JWT, cached", "EdDSA verify, uncached", "RS256 verify, uncached"];
    let targets = [1.0, 1.0, 70.0, 70.0];
    let mut rows: Vec<(Vec<f64>, Vec<f64>)> = names.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for round in 0..args.rounds {
        seed();
        let results = [
            batched(args.batches, args.batch, api_key),
            batched(args.batches, args.batch, cached_jwt),
            single(args.verifies, eddsa),
            single(args.verifies, rs256),
        ];
        for (row, mut lat) in rows.iter_mut().zip(results) {
            row.0.push(lat.percentile_us(50.0));
            row.1.push(lat.percentile_us(99.0));
        }
        eprintln!("  round {}/{} done", round + 1, args.rounds);
    }
    let mut table = Table::new(&["check", "p50 µs (median of rounds)", "p99 µs", "target µs", "verdict"]);
    for ((name, target), (p50s, p99s)) in names.iter().zip(targets).zip(&rows) {
        let p50 = median(p50s);
        table.row(vec![(*name).to_owned(), f2(p50), f2(median(p99s)), f2(target), verdict(p50 <= target).to_owned()]);
    }
    println!(
        "B7 token checks ({} rounds; cached: {} batches of {}; uncached: {} each)",
        args.rounds, args.batches, args.batch, args.verifies
    );
    println!("{header}\n\n{}", table.render());
    Ok(())
}
