//! Server-Sent Events framing.

/// One `message` event carrying a JSON-RPC message, with an optional event id.
pub fn message(id: Option<&str>, json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 48);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: message\n");
    // serde_json never emits raw newlines, but split defensively so framing cannot break.
    for line in json.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A priming event: an event id with empty data, so a client can resume from the very start.
pub fn priming(id: &str, retry_ms: Option<u64>) -> String {
    match retry_ms {
        Some(ms) => format!("id: {id}\nretry: {ms}\ndata: \n\n"),
        None => format!("id: {id}\ndata: \n\n"),
    }
}

/// A keep-alive comment line.
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_with_id_event_and_data_lines() {
        assert_eq!(message(Some("s1-3"), "{\"a\":1}"), "id: s1-3\nevent: message\ndata: {\"a\":1}\n\n");
        assert_eq!(message(None, "x\ny"), "event: message\ndata: x\ndata: y\n\n");
        assert_eq!(priming("s1-0", Some(1000)), "id: s1-0\nretry: 1000\ndata: \n\n");
    }
}
