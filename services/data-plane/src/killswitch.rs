//! The kill switch on one data-plane node.
//!
//! A task holds `LISTEN berth_config` on a dedicated connection. For every change it drops the
//! affected [`Catalog`] entries (so the next request re-reads the tenant, server, version or
//! key and is refused) and ends the sessions it names: their in-flight calls are answered with
//! an error and their streams end. A disabled tool ends only the calls of that tool.
//!
//! Every [`PING_EVERY`] the task proves its connection alive and records that proof in the
//! catalog's [`Confirmation`](crate::catalog::Confirmation): the fail-closed rule is built on
//! it. When the connection is lost the task reconnects with backoff and, once listening again,
//! drops the whole cache and checks every session it holds against the database (changes may
//! have been missed), ending those the missed changes would have.

use std::sync::Weak;
use std::time::{Duration, Instant};

use berth_sessions::{Owner, SessionRegistry};
use berth_storage::notify::{Admitted, Change, ConfigListener, Event, Refused};

use crate::catalog::Catalog;

/// How often the listening connection proves itself.
pub const PING_EVERY: Duration = Duration::from_millis(500);
/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The principal label of an API key (see `Principal::label`).
pub fn key_label(key: berth_core::ApiKeyId) -> String {
    format!("api-key:{key}")
}

/// Whether a principal label belongs to OAuth client `client` (`oauth:<client>:<subject>`).
pub fn is_client_label(label: &str, client: &str) -> bool {
    label.strip_prefix("oauth:").and_then(|rest| rest.strip_prefix(client)).is_some_and(|rest| rest.starts_with(':'))
}

/// Selects the sessions a change ends.
type OwnerFilter = Box<dyn Fn(&Owner) -> bool>;

/// What the calls of a session ended for `why` are told.
fn reason(why: Refused) -> &'static str {
    match why {
        Refused::Tenant => "the tenant was disabled",
        Refused::Server => "the server was disabled",
        Refused::Version => "the server version was disabled",
        Refused::ApiKey => "the API key was revoked",
        Refused::Client => "the OAuth client was disabled",
    }
}

/// Which sessions a change ends, and what their calls are told.
fn doomed(change: &Change) -> Option<(OwnerFilter, &'static str)> {
    match change.clone() {
        Change::Tenant { tenant, enabled: false } => {
            Some((Box::new(move |o: &Owner| o.tenant == tenant), reason(Refused::Tenant)))
        }
        Change::Server { server, enabled: false, .. } => {
            Some((Box::new(move |o: &Owner| o.server == server), reason(Refused::Server)))
        }
        Change::Version { version, enabled: false, .. } => {
            Some((Box::new(move |o: &Owner| o.version == version), reason(Refused::Version)))
        }
        Change::ApiKey { tenant, key, enabled: false } => {
            let label = key_label(key);
            Some((Box::new(move |o: &Owner| o.tenant == tenant && o.principal == label), reason(Refused::ApiKey)))
        }
        Change::OAuthClient { tenant, client, enabled: false } => Some((
            Box::new(move |o: &Owner| o.tenant == tenant && is_client_label(&o.principal, &client)),
            reason(Refused::Client),
        )),
        _ => None,
    }
}

/// Applies one change on this node.
pub fn apply(catalog: &Catalog, sessions: &SessionRegistry, change: &Change) {
    catalog.invalidate(change);
    if let Some((filter, reason)) = doomed(change) {
        let ended = sessions.kill_where(filter, reason);
        tracing::info!(?change, sessions = ended, "kill switch applied");
    }
    if let Change::Server { server, enabled: true, disabled_tools: Some(tools), .. } = change
        && !tools.is_empty()
    {
        let server = *server;
        sessions.kill_tool_calls_where(|o| o.server == server, tools, "the tool was disabled");
    }
    metrics::counter!("berth_config_changes_total").increment(1);
}

/// Starts the listener on the current actix arbiter; it stops when the catalog is dropped.
pub fn spawn(catalog: Weak<Catalog>, sessions: SessionRegistry, node: &str) {
    let name = format!("berth-data-plane:{node}");
    actix_web::rt::spawn(run(catalog, sessions, name));
}

async fn run(catalog: Weak<Catalog>, sessions: SessionRegistry, name: String) {
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    let mut listened = false;
    loop {
        let Some(pool) = catalog.upgrade().map(|c| c.pool().clone()) else { return };
        let mut listener = match ConfigListener::connect(&pool, &name).await {
            Ok(listener) => listener,
            Err(e) => {
                if !failing {
                    tracing::warn!(error.message = %e, "cannot listen for configuration changes; retrying");
                    failing = true;
                }
                metrics::gauge!("berth_config_listener_up").set(0.0);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        drop(pool);
        {
            let Some(catalog) = catalog.upgrade() else { return };
            // Whatever changed while nobody listened is re-read.
            catalog.invalidate_all();
            catalog.confirmation().confirm(Instant::now());
        }
        if failing {
            tracing::info!("listening for configuration changes again");
        }
        if listened {
            // Sessions killed while nobody listened still run here: check them all again.
            let Some(strong) = catalog.upgrade() else { return };
            recheck(&strong, &sessions).await;
        }
        listened = true;
        failing = false;
        backoff = Duration::from_millis(50);
        metrics::gauge!("berth_config_listener_up").set(1.0);
        if !listen(&catalog, &sessions, &mut listener).await {
            return;
        }
        metrics::gauge!("berth_config_listener_up").set(0.0);
        tracing::warn!("lost the configuration listener; reconnecting");
    }
}

/// Ends the sessions on this node whose tenant, server, version, API key or OAuth client was
/// disabled or removed while the node was not listening, as the notifications it missed would
/// have. A failure to check is logged; those sessions' next requests are refused anyway once
/// their entries are re-read.
async fn recheck(catalog: &Catalog, sessions: &SessionRegistry) {
    let owners = sessions.owners();
    if owners.is_empty() {
        return;
    }
    let admitted: Vec<Admitted> = owners
        .iter()
        .map(|o| Admitted {
            tenant: o.tenant,
            server: o.server,
            version: o.version,
            api_key: o.principal.strip_prefix("api-key:").and_then(|id| id.parse().ok()),
            client: registered_client(&o.principal).map(str::to_owned),
        })
        .collect();
    let refused = match catalog.pool().acquire().await {
        Ok(mut conn) => berth_storage::notify::refused_since(&mut conn, &admitted).await,
        Err(e) => Err(e.into()),
    };
    let refused = match refused {
        Ok(refused) => refused,
        Err(e) => {
            tracing::warn!(error.message = %e, "cannot check the sessions after reconnecting");
            return;
        }
    };
    let mut ended = 0;
    for (index, why) in refused {
        let Some(owner) = owners.get(index) else { continue };
        ended += sessions.kill_where(|o| o == owner, reason(why));
    }
    tracing::info!(checked = owners.len(), ended, "sessions checked after reconnecting");
}

/// The registered client of an OAuth principal label (`oauth:<client>:<subject>`); metadata
/// document clients (URLs) are not stored, so there is nothing to check for them.
fn registered_client(label: &str) -> Option<&str> {
    let (client, _) = label.strip_prefix("oauth:")?.split_once(':')?;
    client.starts_with("bc_").then_some(client)
}

/// Serves one connection until it is lost (`true`) or the catalog is gone (`false`).
async fn listen(catalog: &Weak<Catalog>, sessions: &SessionRegistry, listener: &mut ConfigListener) -> bool {
    let mut pinged = Instant::now();
    loop {
        let event = listener.next(PING_EVERY.saturating_sub(pinged.elapsed())).await;
        let Some(strong) = catalog.upgrade() else { return false };
        match event {
            Event::Change(change) => apply(&strong, sessions, &change),
            Event::Unknown(payload) => {
                tracing::warn!(payload, "unknown configuration change; dropping the whole cache");
                strong.invalidate_all();
            }
            Event::Idle => {}
            Event::Lost => return true,
        }
        if pinged.elapsed() >= PING_EVERY {
            let sent = Instant::now();
            if listener.ping(PING_TIMEOUT).await.is_err() {
                return true;
            }
            while let Some(event) = listener.buffered() {
                match event {
                    Event::Change(change) => apply(&strong, sessions, &change),
                    _ => strong.invalidate_all(),
                }
            }
            strong.confirmation().confirm(sent);
            pinged = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_clients_are_read_from_labels_and_urls_are_not() {
        assert_eq!(registered_client("oauth:bc_abc:user-1"), Some("bc_abc"));
        assert_eq!(registered_client("oauth:https://app.example/client.json:user-1"), None);
        assert_eq!(registered_client("api-key:0190"), None);
    }

    #[test]
    fn oauth_client_labels_match_exactly() {
        assert!(is_client_label("oauth:abc:user-1", "abc"));
        assert!(!is_client_label("oauth:abcd:user-1", "abc"));
        assert!(!is_client_label("api-key:abc", "abc"));
    }
}
