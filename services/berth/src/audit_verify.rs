//! `berth audit verify`: checks a tenant's audit hash chain, from the database (`--tenant`)
//! or offline from a JSON Lines export (`--file`).
//!
//! The database check pages through the whole chain in `seq` order and compares its end with
//! the stored chain head, so removing the newest events is caught too. An export carries no
//! head: a file check proves the events it holds are unaltered, contiguous and in order (a
//! filtered export is not contiguous and fails). Either way the first bad event is named by
//! `seq` and id.

use std::io::BufReader;
use std::path::Path;

use anyhow::Context;
use berth_audit::{Verified, Verifier};
use berth_core::{AdminScope, Slug, TenantScope};
use berth_storage::PgPool;
use berth_storage::audit::ChainError;

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether the chain is intact.
    pub intact: bool,
    /// One line for the operator: what was checked, or the first bad event.
    pub message: String,
}

fn summary(what: &str, verified: &Verified) -> String {
    match (verified.first_seq, verified.last_seq, &verified.head) {
        (Some(first), Some(last), Some(head)) => {
            format!("{what}: intact, {} events (seq {first}..{last}), head {head}", verified.events)
        }
        _ => format!("{what}: intact, no events"),
    }
}

/// Verifies tenant `slug`'s chain in the database.
pub async fn verify_tenant(pool: &PgPool, slug: &str) -> anyhow::Result<Report> {
    let slug = Slug::parse("tenant", slug)?;
    let mut conn = pool.acquire().await.context("cannot connect to the database")?;
    // The operator holds the database credentials: platform-level access.
    let tenant = berth_storage::tenants::find_by_slug(&mut conn, AdminScope::from_verified_admin_token(), &slug)
        .await
        .with_context(|| format!("tenant {slug} not found"))?;
    let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug);
    let what = format!("audit chain of tenant {slug}");
    Ok(match berth_storage::audit::verify_chain(&mut conn, &scope).await? {
        Ok(verified) => Report { intact: true, message: summary(&what, &verified) },
        Err(ChainError::Broken(broken)) => Report { intact: false, message: format!("{what}: broken at {broken}") },
        Err(ChainError::Head(why)) => Report { intact: false, message: format!("{what}: broken: {why}") },
    })
}

/// Verifies a JSON Lines export, offline.
pub fn verify_file(path: &Path) -> anyhow::Result<Report> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let what = format!("audit export {}", path.display());
    let mut verifier = Verifier::new();
    for event in berth_audit::export::read_jsonl(BufReader::new(file)) {
        let event = match event {
            Ok(event) => event,
            Err(e) => return Ok(Report { intact: false, message: format!("{what}: broken: {e}") }),
        };
        if let Err(broken) = verifier.push(&event) {
            return Ok(Report { intact: false, message: format!("{what}: broken at {broken}") });
        }
    }
    let verified = verifier.finish();
    let mut message = summary(&what, &verified);
    if verified.first_seq.is_some_and(|s| s > 1) {
        message.push_str(" (a part of the chain: events before the first were not checked)");
    }
    Ok(Report { intact: true, message })
}
