//! Export formats: JSON Lines (one [`SealedEvent`] per line, verifiable offline with
//! `berth audit verify --file`) and CSV (RFC 4180, for spreadsheets; not verifiable).

use std::io::BufRead;

use crate::chain::SealedEvent;
use crate::error::{Error, Result};

/// One JSON Lines line, with its newline.
pub fn jsonl_line(event: &SealedEvent) -> String {
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    line
}

/// The CSV columns.
pub const CSV_COLUMNS: &[&str] = &[
    "seq",
    "id",
    "at",
    "tenant_id",
    "kind",
    "method",
    "name",
    "principal",
    "client",
    "server",
    "version",
    "args_sha256",
    "outcome",
    "error_code",
    "latency_us",
    "cpu_us",
    "bytes_in",
    "bytes_out",
    "detail",
    "node",
    "prev_hash",
    "hash",
];

/// The CSV header line.
pub fn csv_header() -> String {
    let mut line = CSV_COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

fn field(value: &str) -> String {
    // Cells starting with these are formulas in spreadsheets: prefix them (CSV injection).
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// One CSV row, with its line ending. The captured payload is not exported as CSV.
pub fn csv_row(sealed: &SealedEvent) -> String {
    let e = &sealed.event;
    let cells = [
        sealed.seq.to_string(),
        e.id.to_string(),
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        e.tenant_id.to_string(),
        e.kind.as_str().to_owned(),
        e.method.clone(),
        opt(&e.name),
        e.principal.clone(),
        opt(&e.client),
        opt(&e.server),
        opt(&e.version),
        opt(&e.args_sha256),
        e.outcome.clone(),
        opt(&e.error_code),
        opt(&e.latency_us),
        opt(&e.cpu_us),
        opt(&e.bytes_in),
        opt(&e.bytes_out),
        opt(&e.detail),
        e.node.clone(),
        sealed.prev_hash.clone(),
        sealed.hash.clone(),
    ];
    let mut line = cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// Reads a JSON Lines export; blank lines are skipped.
pub fn read_jsonl(reader: impl BufRead) -> impl Iterator<Item = Result<SealedEvent>> {
    reader.lines().enumerate().filter_map(|(n, line)| match line {
        Ok(line) if line.trim().is_empty() => None,
        Ok(line) => Some(
            serde_json::from_str::<SealedEvent>(&line)
                .map_err(|e| Error::Parse { line: n + 1, message: e.to_string() }),
        ),
        Err(e) => Some(Err(Error::Parse { line: n + 1, message: e.to_string() })),
    })
}

#[cfg(test)]
mod tests {
    use berth_core::TenantId;

    use super::*;
    use crate::chain::Head;
    use crate::event::{AuditEvent, Kind};

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut event = AuditEvent::new(TenantId::new(), Kind::Call, "tools/call", "api-key:k");
        event.name = Some("=HYPERLINK(\"x\")".into());
        event.detail = Some("a,b".into());
        let mut head = Head::EMPTY;
        let row = csv_row(&head.seal(event));
        assert!(row.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{row}");
        assert!(row.contains("\"a,b\""), "{row}");
        assert_eq!(row.matches(',').count() - 1, CSV_COLUMNS.len() - 1, "one comma is inside a cell: {row}");
    }

    #[test]
    fn jsonl_round_trips() {
        let mut head = Head::EMPTY;
        let events: Vec<SealedEvent> =
            (0..3).map(|_| head.seal(AuditEvent::new(TenantId::new(), Kind::Auth, "authenticate", "x"))).collect();
        let text: String = events.iter().map(jsonl_line).collect();
        let back: Vec<SealedEvent> = read_jsonl(text.as_bytes()).collect::<Result<_>>().unwrap();
        assert_eq!(back, events);
    }
}
