//! The limits of a plan or a key, and what exceeding one means for the client.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Limits of a tenant's plan or of one API key; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per minute (a token bucket holding a minute's worth).
    pub requests_per_minute: Option<u32>,
    /// `tools/call` requests per calendar month (UTC).
    pub tool_calls_per_month: Option<u64>,
    /// Concurrent client sessions.
    pub max_sessions: Option<u32>,
    /// CPU milliseconds of WASM servers per calendar month (UTC).
    pub wasm_cpu_ms_per_month: Option<u64>,
    /// Running containers (tenant plans only).
    pub max_containers: Option<u32>,
}

impl Limits {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &'static str, value: Option<u64>| match value {
            Some(0) => Err(Error::Invalid { field: name, reason: "must be at least 1 (omit it for no limit)" }),
            _ => Ok(()),
        };
        positive("requests_per_minute", self.requests_per_minute.map(u64::from))?;
        positive("tool_calls_per_month", self.tool_calls_per_month)?;
        positive("max_sessions", self.max_sessions.map(u64::from))?;
        positive("wasm_cpu_ms_per_month", self.wasm_cpu_ms_per_month)?;
        Ok(())
    }

    /// Whether nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`Limits::requests_per_minute`].
    RequestsPerMinute,
    /// [`Limits::tool_calls_per_month`].
    ToolCallsPerMonth,
    /// [`Limits::max_sessions`].
    MaxSessions,
    /// [`Limits::wasm_cpu_ms_per_month`].
    WasmCpuMsPerMonth,
    /// [`Limits::max_containers`].
    MaxContainers,
}

impl Limit {
    /// The field name, as in the quotas API.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::RequestsPerMinute => "requests_per_minute",
            Limit::ToolCallsPerMonth => "tool_calls_per_month",
            Limit::MaxSessions => "max_sessions",
            Limit::WasmCpuMsPerMonth => "wasm_cpu_ms_per_month",
            Limit::MaxContainers => "max_containers",
        }
    }
}

/// Whose limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaScope {
    /// The tenant's plan.
    Tenant,
    /// The caller's API key.
    Key,
}

impl QuotaScope {
    /// `tenant` or `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaScope::Tenant => "tenant",
            QuotaScope::Key => "key",
        }
    }
}

/// A refusal: which limit, how much it allows, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The limit.
    pub limit: Limit,
    /// Whose.
    pub scope: QuotaScope,
    /// Its value.
    pub allowed: u64,
    /// What is left (0 unless a request needed more than one unit).
    pub remaining: u64,
    /// When trying again can succeed.
    pub retry_after: Duration,
    /// The limit's window (a minute, or the month).
    pub window: Duration,
}

impl Exceeded {
    /// Seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }

    /// The policy name in `RateLimit` headers: `tenant:requests_per_minute`.
    pub fn policy(&self) -> String {
        format!("{}:{}", self.scope.as_str(), self.limit.as_str())
    }

    /// A sentence naming the limit.
    pub fn message(&self) -> String {
        let whose = match self.scope {
            QuotaScope::Tenant => "the tenant's plan",
            QuotaScope::Key => "this API key",
        };
        format!(
            "quota exceeded: {} ({} allowed by {whose}); retry after {} s",
            self.limit.as_str(),
            self.allowed,
            self.retry_after_secs()
        )
    }
}

/// The first instant of `at`'s calendar month (UTC).
pub fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(at.year(), at.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(at, |d| Utc.from_utc_datetime(&d))
}

/// The first instant of the month after `at`'s (UTC).
pub fn next_month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 { (at.year() + 1, 1) } else { (at.year(), at.month() + 1) };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(at, |d| Utc.from_utc_datetime(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_at_the_year_end() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).single().unwrap_or_default();
        assert_eq!(month_start(at), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default());
        assert_eq!(next_month_start(at), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().unwrap_or_default());
    }

    #[test]
    fn zero_limits_are_refused_and_the_message_names_the_limit() {
        assert!(Limits { tool_calls_per_month: Some(0), ..Limits::default() }.validate().is_err());
        let exceeded = Exceeded {
            limit: Limit::ToolCallsPerMonth,
            scope: QuotaScope::Key,
            allowed: 10,
            remaining: 0,
            retry_after: Duration::from_millis(1500),
            window: Duration::from_secs(60),
        };
        assert_eq!(exceeded.retry_after_secs(), 2);
        assert_eq!(exceeded.policy(), "key:tool_calls_per_month");
        assert!(exceeded.message().contains("tool_calls_per_month (10 allowed by this API key)"));
    }

    #[test]
    fn limits_serialize_with_their_api_names() {
        let limits = Limits { requests_per_minute: Some(60), ..Limits::default() };
        let json = serde_json::to_value(limits).unwrap_or_default();
        assert_eq!(json["requests_per_minute"], 60);
        assert!(json["max_sessions"].is_null());
    }
}
