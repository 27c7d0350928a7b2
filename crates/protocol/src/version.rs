//! Protocol revisions and eras.

/// An MCP protocol revision Berth speaks over Streamable HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// First Streamable HTTP revision; the only one with JSON-RPC batches.
    V2025_03_26,
    /// Adds `MCP-Protocol-Version`, structured tool output, elicitation.
    V2025_06_18,
    /// The last legacy (session-based) revision.
    V2025_11_25,
    /// The first modern (stateless) revision.
    V2026_07_28,
}

/// Legacy revisions use `initialize` and sessions; modern ones are stateless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// `2025-03-26` … `2025-11-25`.
    Legacy,
    /// `2026-07-28` onwards.
    Modern,
}

impl ProtocolVersion {
    /// Every supported revision, oldest first.
    pub const ALL: [ProtocolVersion; 4] = [Self::V2025_03_26, Self::V2025_06_18, Self::V2025_11_25, Self::V2026_07_28];
    /// The newest legacy revision: the answer to an `initialize` asking for one we lack.
    pub const LATEST_LEGACY: ProtocolVersion = Self::V2025_11_25;
    /// Modern revisions, as listed in `server/discover` and version errors.
    pub const MODERN: [&'static str; 1] = ["2026-07-28"];

    /// Parses a revision string.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == value)
    }

    /// The revision string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// The revision's era.
    pub fn era(self) -> Era {
        if self >= Self::V2026_07_28 { Era::Modern } else { Era::Legacy }
    }

    /// Whether POST bodies may be JSON-RPC batches.
    pub fn allows_batches(self) -> bool {
        self == Self::V2025_03_26
    }

    /// Legacy version negotiation: the requested revision when it is a legacy one we speak,
    /// else our newest legacy revision.
    pub fn negotiate_legacy(requested: &str) -> Self {
        match Self::parse(requested) {
            Some(v) if v.era() == Era::Legacy => v,
            _ => Self::LATEST_LEGACY,
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_negotiation_echoes_known_legacy_versions_and_falls_back_to_the_latest() {
        assert_eq!(ProtocolVersion::negotiate_legacy("2025-03-26"), ProtocolVersion::V2025_03_26);
        assert_eq!(ProtocolVersion::negotiate_legacy("2025-06-18"), ProtocolVersion::V2025_06_18);
        assert_eq!(ProtocolVersion::negotiate_legacy("2024-11-05"), ProtocolVersion::V2025_11_25);
        assert_eq!(ProtocolVersion::negotiate_legacy("2026-07-28"), ProtocolVersion::V2025_11_25);
        assert_eq!(ProtocolVersion::negotiate_legacy("garbage"), ProtocolVersion::V2025_11_25);
    }

    #[test]
    fn only_2025_03_26_allows_batches() {
        let with: Vec<_> = ProtocolVersion::ALL.into_iter().filter(|v| v.allows_batches()).collect();
        assert_eq!(with, [ProtocolVersion::V2025_03_26]);
    }

    #[test]
    fn eras_split_at_2026_07_28() {
        assert_eq!(ProtocolVersion::V2025_11_25.era(), Era::Legacy);
        assert_eq!(ProtocolVersion::V2026_07_28.era(), Era::Modern);
    }
}
