//! The local spool: audit events waiting for the database, as JSON Lines files on disk.
//!
//! Events are appended to the current *segment* (`{n:020}.jsonl`); the writer syncs each batch
//! it spools (`fsync`). Replay first closes the current segment, then sends closed segments
//! oldest first and deletes each one once the sink stored all of it. A crash mid-append leaves
//! at most a torn last line, which [`Spool::read`] skips; a crash mid-replay replays the
//! segment again, and the sink's idempotency by event id keeps every event stored once.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::event::AuditEvent;

/// A directory of spooled events.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Option<(PathBuf, File)>,
    next: u64,
    /// Bytes in all segments on disk (approximate after a restart: counted when opened).
    bytes: u64,
}

fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".jsonl")?.parse().ok()
}

fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(n) = segment_number(&path) {
            found.push((n, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The spool refused an append.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Writing failed.
    #[error("cannot write the audit spool: {0}")]
    Io(#[from] io::Error),
    /// The spool holds its maximum.
    #[error("the audit spool is full ({0} bytes)")]
    Full(u64),
}

impl Spool {
    /// Opens (creating) `dir`; existing segments are kept for replay. At most `max_bytes` are
    /// spooled.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let existing = segments(&dir)?;
        let next = existing.last().map_or(1, |(n, _)| n + 1);
        let mut bytes = 0;
        for (_, path) in &existing {
            bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        }
        Ok(Self { dir, max_bytes, state: Mutex::new(State { current: None, next, bytes }) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `events`; with `sync`, they are on disk when this returns.
    pub fn append(&self, events: &[AuditEvent], sync: bool) -> Result<(), SpoolError> {
        let mut buf = Vec::with_capacity(events.len() * 512);
        for event in events {
            serde_json::to_writer(&mut buf, event).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        let mut state = self.state.lock().map_err(|_| io::Error::other("spool lock poisoned"))?;
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if state.bytes.saturating_add(len) > self.max_bytes {
            return Err(SpoolError::Full(self.max_bytes));
        }
        if state.current.is_none() {
            let path = self.dir.join(format!("{:020}.jsonl", state.next));
            state.next += 1;
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            state.current = Some((path, file));
        }
        if let Some((_, file)) = state.current.as_mut() {
            file.write_all(&buf)?;
            if sync {
                file.sync_data()?;
            }
        }
        state.bytes = state.bytes.saturating_add(len);
        Ok(())
    }

    /// Whether nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.state.lock().map(|s| s.current.is_none()).unwrap_or(false)
            && segments(&self.dir).map(|s| s.is_empty()).unwrap_or(true)
    }

    /// Closes the current segment and lists every segment, oldest first.
    pub fn rotate(&self) -> io::Result<Vec<PathBuf>> {
        if let Ok(mut state) = self.state.lock()
            && let Some((_, file)) = state.current.take()
        {
            file.sync_data()?;
        }
        Ok(segments(&self.dir)?.into_iter().map(|(_, path)| path).collect())
    }

    /// Reads a closed segment; a torn or corrupt line is skipped (and reported in the log).
    pub fn read(path: &Path) -> io::Result<Vec<AuditEvent>> {
        let reader = BufReader::new(File::open(path)?);
        let mut events = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<AuditEvent>(&line) {
                Ok(event) => events.push(event),
                Err(e) => {
                    tracing::warn!(path = %path.display(), line = n + 1, error.message = %e, "skipping a torn audit spool line")
                }
            }
        }
        Ok(events)
    }

    /// Deletes a segment whose events are stored.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(path)?;
        if let Ok(mut state) = self.state.lock() {
            state.bytes = state.bytes.saturating_sub(len);
        }
        Ok(())
    }

    /// Bytes spooled.
    pub fn bytes(&self) -> u64 {
        self.state.lock().map(|s| s.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use berth_core::TenantId;

    use super::*;
    use crate::event::Kind;

    #[test]
    fn segments_replay_in_order_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let tenant = TenantId::new();
        let a = AuditEvent::new(tenant, Kind::Call, "tools/call", "p");
        let b = AuditEvent::new(tenant, Kind::Call, "tools/call", "p");
        spool.append(std::slice::from_ref(&a), true).unwrap();
        let first = spool.rotate().unwrap();
        spool.append(std::slice::from_ref(&b), true).unwrap();
        let all = spool.rotate().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], first[0]);
        let mut torn = OpenOptions::new().append(true).open(&all[1]).unwrap();
        torn.write_all(b"{\"id\":\"0190").unwrap();
        assert_eq!(Spool::read(&all[0]).unwrap(), vec![a]);
        assert_eq!(Spool::read(&all[1]).unwrap(), vec![b]);
        for path in &all {
            spool.remove(path).unwrap();
        }
        assert!(spool.is_empty());
        let reopened = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(reopened.is_empty());
    }

    #[test]
    fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 100).unwrap();
        let event = AuditEvent::new(TenantId::new(), Kind::Call, "tools/call", "p");
        assert!(matches!(spool.append(&[event], false), Err(SpoolError::Full(100))));
    }
}
