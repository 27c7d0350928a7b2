//! Configuration changes pushed to every data-plane node with PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! The control plane calls [`publish`] in the transaction that changes a tenant, server,
//! version, API key, OAuth client or quota, so the notification is delivered exactly when the
//! change commits (and never for a rolled-back one). Each data-plane node holds one
//! [`ConfigListener`] on a dedicated connection; it drops cached entries and ends sessions for
//! whatever a [`Change`] names. See `docs/adr/0010-audit-quotas-killswitch.md`.

use std::time::Duration;

use berth_core::{ApiKeyId, ServerId, TenantId, VersionId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use crate::error::{Error, Result};

/// What a live session on a node was admitted under, to check again after the node may have
/// missed changes (its listener reconnected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The tenant.
    pub tenant: TenantId,
    /// The server.
    pub server: ServerId,
    /// The server version the session runs.
    pub version: VersionId,
    /// The API key, for a key's session.
    pub api_key: Option<ApiKeyId>,
    /// The registered OAuth client, for a session of one of its tokens.
    pub client: Option<String>,
}

/// Why a session may no longer run, as [`refused_since`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The tenant is disabled or gone.
    Tenant,
    /// The server is disabled or gone.
    Server,
    /// The version is disabled or gone.
    Version,
    /// The API key is revoked, expired or gone.
    ApiKey,
    /// The OAuth client is gone.
    Client,
}

/// Of `sessions`, those whose tenant, server, version, API key or OAuth client no longer allows
/// them, by index, with the first reason found. One query for all, across tenants: it runs on a
/// data-plane node that reconnected to the notification channel, for the sessions it holds.
pub async fn refused_since(conn: &mut PgConnection, sessions: &[Admitted]) -> Result<Vec<(usize, Refused)>> {
    let tenants: Vec<uuid::Uuid> = sessions.iter().map(|s| s.tenant.as_uuid()).collect();
    let servers: Vec<uuid::Uuid> = sessions.iter().map(|s| s.server.as_uuid()).collect();
    let versions: Vec<uuid::Uuid> = sessions.iter().map(|s| s.version.as_uuid()).collect();
    // No key or client: the nil UUID and the empty string, which no row has.
    let keys: Vec<uuid::Uuid> = sessions.iter().map(|s| s.api_key.map_or(uuid::Uuid::nil(), |k| k.as_uuid())).collect();
    let clients: Vec<String> = sessions.iter().map(|s| s.client.clone().unwrap_or_default()).collect();
    let rows = sqlx::query!(
        r#"SELECT o.i AS "i!",
               CASE WHEN t.id IS NULL OR NOT t.enabled THEN 'tenant'
                    WHEN s.id IS NULL OR NOT s.enabled THEN 'server'
                    WHEN v.id IS NULL OR NOT v.enabled THEN 'version'
                    WHEN o.api_key <> '00000000-0000-0000-0000-000000000000'::uuid
                         AND (k.id IS NULL OR k.revoked_at IS NOT NULL OR k.expires_at <= now()) THEN 'api-key'
                    WHEN o.client <> '' AND c.client_id IS NULL THEN 'client'
               END AS "reason"
           FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[])
                WITH ORDINALITY AS o(tenant, server, version, api_key, client, i)
           LEFT JOIN tenants t ON t.id = o.tenant
           LEFT JOIN servers s ON s.tenant_id = o.tenant AND s.id = o.server
           LEFT JOIN server_versions v ON v.tenant_id = o.tenant AND v.id = o.version AND v.server_id = o.server
           LEFT JOIN api_keys k ON k.tenant_id = o.tenant AND k.id = o.api_key
           LEFT JOIN oauth_clients c ON c.tenant_id = o.tenant AND c.client_id = o.client"#,
        &tenants,
        &servers,
        &versions,
        &keys,
        &clients
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let reason = match row.reason.as_deref()? {
                "tenant" => Refused::Tenant,
                "server" => Refused::Server,
                "version" => Refused::Version,
                "api-key" => Refused::ApiKey,
                _ => Refused::Client,
            };
            // ORDINALITY counts from 1.
            Some((usize::try_from(row.i).ok()?.checked_sub(1)?, reason))
        })
        .collect())
}

/// The notification channel.
pub const CHANNEL: &str = "berth_config";

/// What changed. Serialized as the notification payload (JSON, well under PostgreSQL's 8000
/// byte limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// The tenant was changed, disabled or deleted.
    Tenant {
        /// The tenant.
        tenant: TenantId,
        /// Whether it still serves (false when disabled or deleted).
        enabled: bool,
    },
    /// A server was changed (enabled flag, disabled tools, active version) or deleted.
    Server {
        /// Its tenant.
        tenant: TenantId,
        /// The server.
        server: ServerId,
        /// Whether it still serves (false when disabled or deleted).
        enabled: bool,
        /// Its disabled tools, when they fit in a notification.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disabled_tools: Option<Vec<String>>,
    },
    /// A version was enabled or disabled.
    Version {
        /// Its tenant.
        tenant: TenantId,
        /// Its server.
        server: ServerId,
        /// The version.
        version: VersionId,
        /// Whether it still serves.
        enabled: bool,
    },
    /// An API key was revoked or changed.
    ApiKey {
        /// Its tenant.
        tenant: TenantId,
        /// The key.
        key: ApiKeyId,
        /// Whether it still works (false when revoked).
        enabled: bool,
    },
    /// An OAuth client was disabled or its tokens revoked.
    OAuthClient {
        /// Its tenant.
        tenant: TenantId,
        /// The client id, as it appears in principal labels (`oauth:<client>:...`).
        client: String,
        /// Whether it still works.
        enabled: bool,
    },
    /// The tenant's plan or a key's quotas changed.
    Quotas {
        /// The tenant.
        tenant: TenantId,
    },
}

/// Largest disabled-tool list sent in a notification (PostgreSQL caps payloads at 8000 bytes).
const MAX_TOOLS_PAYLOAD: usize = 6000;

/// Disabled tools for a [`Change::Server`]: `None` when the list is too long to send.
pub fn tools_payload(tools: &[String]) -> Option<Vec<String>> {
    let size: usize = tools.iter().map(|t| t.len() + 3).sum();
    (size <= MAX_TOOLS_PAYLOAD).then(|| tools.to_vec())
}

impl Change {
    /// The tenant the change belongs to.
    pub fn tenant(&self) -> TenantId {
        match self {
            Change::Tenant { tenant, .. }
            | Change::Server { tenant, .. }
            | Change::Version { tenant, .. }
            | Change::ApiKey { tenant, .. }
            | Change::OAuthClient { tenant, .. }
            | Change::Quotas { tenant } => *tenant,
        }
    }
}

/// Sends `change` to every listening node when the current transaction commits (at once when
/// `conn` is not in a transaction).
pub async fn publish(conn: &mut PgConnection, change: &Change) -> Result<()> {
    let payload = serde_json::to_string(change).map_err(|e| Error::Embedded(format!("cannot encode change: {e}")))?;
    sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, payload).execute(conn).await?;
    Ok(())
}

/// What [`ConfigListener::next`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A change notification.
    Change(Change),
    /// A notification whose payload this build does not understand: treat as "anything changed".
    Unknown(String),
    /// Nothing arrived within the wait.
    Idle,
    /// The connection was lost; notifications may have been missed.
    Lost,
}

/// A `LISTEN berth_config` session on its own connection (never one of the pool's).
pub struct ConfigListener {
    /// Always `Some` until dropped.
    inner: Option<PgListener>,
}

impl Drop for ConfigListener {
    fn drop(&mut self) {
        // sqlx returns the connection from a spawned task, which panics when the runtime is
        // already gone (a test's runtime shutting down with the listener task still alive).
        // The process is ending then: leak the connection instead.
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(inner) = self.inner.take()
        {
            std::mem::forget(inner);
        }
    }
}

impl std::fmt::Debug for ConfigListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigListener").finish_non_exhaustive()
    }
}

fn decode(payload: &str) -> Event {
    match serde_json::from_str::<Change>(payload) {
        Ok(change) => Event::Change(change),
        Err(_) => Event::Unknown(payload.chars().take(200).collect()),
    }
}

impl ConfigListener {
    /// Connects with `pool`'s settings on a dedicated connection and starts listening.
    pub async fn connect(pool: &PgPool, application_name: &str) -> Result<Self> {
        let options = (*pool.connect_options()).clone().application_name(application_name);
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(2))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        // Owned by `Self` before the next await, so a drop while `LISTEN` is in flight (the task
        // cancelled by a runtime shutting down) goes through `Drop` above too.
        let mut this = Self { inner: Some(PgListener::connect_with(&own).await?) };
        let inner = this.inner()?;
        inner.ignore_pool_close_event(true);
        inner.eager_reconnect(false);
        inner.listen(CHANNEL).await?;
        Ok(this)
    }

    fn inner(&mut self) -> Result<&mut PgListener> {
        self.inner.as_mut().ok_or_else(|| Error::Embedded("the listener was dropped".into()))
    }

    /// The next notification, waiting at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Event {
        let Ok(inner) = self.inner() else { return Event::Lost };
        if let Some(n) = inner.next_buffered() {
            return decode(n.payload());
        }
        // `try_recv` is cancel-safe: a timeout never loses part of a message.
        match tokio::time::timeout(wait, inner.try_recv()).await {
            Err(_) => Event::Idle,
            Ok(Ok(Some(n))) => decode(n.payload()),
            Ok(Ok(None) | Err(_)) => Event::Lost,
        }
    }

    /// A notification already received (for example during [`ping`](Self::ping)), if any.
    pub fn buffered(&mut self) -> Option<Event> {
        self.inner.as_mut()?.next_buffered().map(|n| decode(n.payload()))
    }

    /// Proves the listening connection is alive. Notifications committed before the ping was
    /// answered are buffered by then (read them with [`buffered`](Self::buffered)).
    pub async fn ping(&mut self, wait: Duration) -> Result<()> {
        let query = sqlx::query_scalar!(r#"SELECT 1 AS "one!""#).fetch_one(self.inner()?);
        match tokio::time::timeout(wait, query).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::Embedded("the listening connection did not answer in time".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_as_tagged_json() {
        let change = Change::Version {
            tenant: TenantId::new(),
            server: ServerId::new(),
            version: VersionId::new(),
            enabled: false,
        };
        let json = serde_json::to_string(&change).unwrap_or_default();
        assert!(json.contains(r#""kind":"version""#), "{json}");
        assert_eq!(decode(&json), Event::Change(change));
        assert!(matches!(decode(r#"{"kind":"future"}"#), Event::Unknown(_)));
    }
}
