//! Percentiles, medians and result tables.

use std::time::Duration;

/// Latencies of one timed phase, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies(Vec<u64>);

impl Latencies {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile in microseconds (`p` in 0..=100); 0 when empty.
    pub(crate) fn percentile_us(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.0.len()) - 1;
        self.0[index] as f64 / 1000.0
    }
}

/// One timed phase against one target.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cell {
    /// Completed operations per second of wall time.
    pub(crate) rate: f64,
    /// Median latency, µs.
    pub(crate) p50: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99: f64,
    /// Server CPU use during the phase, in cores (1.0 = one core busy).
    pub(crate) server_cpu: f64,
    /// Server CPU time per operation, µs.
    pub(crate) cpu_per_op: f64,
    /// CPU time of the server's own PostgreSQL cluster per operation, µs (0 without one).
    pub(crate) db_cpu_per_op: f64,
    /// User-space instructions of the server per operation, under callgrind (0 when not counted).
    pub(crate) instructions_per_op: f64,
    /// Operations that failed.
    pub(crate) errors: usize,
}

impl Cell {
    /// Builds a cell from a phase's latencies, wall time and server CPU seconds.
    pub(crate) fn from(mut lat: Latencies, wall: Duration, cpu_secs: f64, errors: usize) -> Self {
        let ops = lat.len() as f64;
        let secs = wall.as_secs_f64().max(1e-9);
        Self {
            rate: ops / secs,
            p50: lat.percentile_us(50.0),
            p99: lat.percentile_us(99.0),
            server_cpu: cpu_secs / secs,
            cpu_per_op: if ops > 0.0 { cpu_secs * 1e6 / ops } else { 0.0 },
            db_cpu_per_op: 0.0,
            instructions_per_op: 0.0,
            errors,
        }
    }

    /// Adds the CPU seconds the server's PostgreSQL cluster used during the phase.
    pub(crate) fn with_database(mut self, ops: usize, db_cpu_secs: f64) -> Self {
        self.db_cpu_per_op = if ops > 0 { db_cpu_secs * 1e6 / ops as f64 } else { 0.0 };
        self
    }
}

/// Median of `values` (mean of the middle two for an even count); 0 when empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Medians of each field over rounds.
pub(crate) fn median_cell(cells: &[Cell]) -> Cell {
    let field = |f: fn(&Cell) -> f64| median(&cells.iter().map(f).collect::<Vec<_>>());
    Cell {
        rate: field(|c| c.rate),
        p50: field(|c| c.p50),
        p99: field(|c| c.p99),
        server_cpu: field(|c| c.server_cpu),
        cpu_per_op: field(|c| c.cpu_per_op),
        db_cpu_per_op: field(|c| c.db_cpu_per_op),
        instructions_per_op: field(|c| c.instructions_per_op),
        errors: cells.iter().map(|c| c.errors).sum(),
    }
}

/// A plain-text table with right-aligned columns after the first.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders as a Markdown table (also readable as plain text).
    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(String::len).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = cells.get(i).map_or("", String::as_str);
                    if i == 0 { format!("{cell:<w$}", w = widths[i]) } else { format!("{cell:>w$}", w = widths[i]) }
                })
                .collect();
            format!("| {} |", parts.join(" | "))
        };
        let mut out = vec![line(&self.header)];
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { "-".repeat(*w) } else { format!("{}:", "-".repeat(w - 1)) })
            .collect();
        out.push(format!("| {} |", rule.join(" | ")));
        for row in &self.rows {
            out.push(line(row));
        }
        out.join("\n")
    }
}

/// `12345.6` → `"12,346"`.
pub(crate) fn int(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// One decimal.
pub(crate) fn f1(x: f64) -> String {
    format!("{x:.1}")
}

/// Two decimals.
pub(crate) fn f2(x: f64) -> String {
    format!("{x:.2}")
}

/// "met" / "MISSED".
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
