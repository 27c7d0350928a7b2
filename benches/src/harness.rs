//! Processes and cores: server children pinned with `taskset`, the load generator pinned to
//! another core, and the readings taken from `/proc` (RSS, CPU time).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// Other jobs may use at most this many cores when a round starts...
pub(crate) const QUIET_CORES: f64 = 0.25;
/// ...or the round waits up to this long for them.
pub(crate) const QUIET_PATIENCE: Duration = Duration::from_secs(15);

/// `/proc/<pid>/stat` counts CPU time in `USER_HZ` ticks, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// Where the servers and the load generator run.
#[derive(Debug, Clone)]
pub(crate) struct Pinning {
    /// `taskset -c` list for server processes, when pinning is possible.
    pub(crate) server: Option<String>,
    /// Core of the load generator, when pinning is possible.
    pub(crate) client: Option<usize>,
}

impl Pinning {
    /// Pins the load generator (this process, before any runtime thread exists) to the last
    /// core and reserves the first for servers, when `taskset` exists and there are two cores.
    pub(crate) fn apply(enabled: bool) -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let taskset = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !enabled || cores < 2 || !taskset {
            return Self { server: None, client: None };
        }
        let client = cores - 1;
        let mut set = nix::sched::CpuSet::new();
        if set.set(client).is_err() || nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_err() {
            return Self { server: None, client: None };
        }
        let server = if cores == 2 { "0".to_owned() } else { format!("0-{}", cores - 2) };
        Self { server: Some(server), client: Some(client) }
    }

    /// One line for the result header.
    pub(crate) fn describe(&self) -> String {
        match (&self.server, self.client) {
            (Some(server), Some(client)) => {
                format!("servers pinned to CPU {server} (taskset), load generator to CPU {client}")
            }
            _ => "no pinning (taskset missing, --no-pin, or fewer than 2 cores)".to_owned(),
        }
    }
}

/// A server child process (`berth-bench serve ...`), killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// Its bound port on 127.0.0.1.
    pub(crate) port: u16,
    /// Its process id (for `/proc` readings).
    pub(crate) pid: u32,
    /// What it is, for messages.
    pub(crate) name: String,
    /// The postmaster of the PostgreSQL cluster it started, if any (Berth's private cluster).
    pub(crate) database: Option<u32>,
    /// Whether it runs under valgrind's callgrind, which counts the instructions it executes.
    pub(crate) callgrind: bool,
}

impl Server {
    /// Starts `berth-bench serve <args>` (under `taskset` when pinning) and waits for its
    /// `READY <port>` line. Its stderr goes to `$TMPDIR/berth-bench-<name>.log`.
    pub(crate) fn spawn(name: &str, args: &[String], pinning: &Pinning) -> anyhow::Result<Self> {
        Self::start(name, args, pinning, false)
    }

    /// As [`Server::spawn`], under `valgrind --tool=callgrind` (tens of times slower): its
    /// user-space instructions are counted, the same for the same work whatever else the
    /// machine does. See [`Server::zero_instructions`] and [`Server::instructions`].
    pub(crate) fn spawn_counted(name: &str, args: &[String], pinning: &Pinning) -> anyhow::Result<Self> {
        Self::start(name, args, pinning, true)
    }

    fn start(name: &str, args: &[String], pinning: &Pinning, callgrind: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the bench executable")?;
        let mut program: Vec<std::ffi::OsString> = Vec::new();
        if callgrind {
            let out = std::env::temp_dir().join(format!("berth-bench-{name}.%p.callgrind"));
            program.extend(["valgrind".into(), "--tool=callgrind".into(), "--smc-check=all".into()]);
            program.push(format!("--callgrind-out-file={}", out.display()).into());
        }
        program.push(exe.into_os_string());
        let log_path = std::env::temp_dir().join(format!("berth-bench-{name}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = match &pinning.server {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).args(&program);
                c
            }
            None => {
                let mut c = Command::new(&program[0]);
                c.args(&program[1..]);
                c
            }
        };
        command.arg("serve").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log));
        let before = postmasters();
        let mut child = command.spawn().with_context(|| format!("cannot start the {name} server"))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines.by_ref().map_while(Result::ok).find_map(|l| l.strip_prefix("READY ").map(str::to_owned));
            let _ = tx.send(ready);
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let port = match rx.recv_timeout(Duration::from_secs(if callgrind { 900 } else { 180 })) {
            Ok(Some(port)) => port.trim().parse::<u16>().context("bad READY line")?,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the {name} server did not start; see {}", log_path.display());
            }
        };
        // `pg_ctl` detaches the postmaster from the server, so it is found as the one that
        // appeared while this server started (servers start one at a time).
        let started: Vec<u32> = postmasters().into_iter().filter(|p| !before.contains(p)).collect();
        let database = match started.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        Ok(Self { child, port, pid, name: name.to_owned(), database, callgrind })
    }

    /// Under callgrind: sets its instruction counters to zero.
    pub(crate) fn zero_instructions(&self) -> anyhow::Result<()> {
        self.callgrind_control("--zero")
    }

    /// Under callgrind: writes a profile of the instructions since the counters were zeroed
    /// (`$TMPDIR/berth-bench-<name>.<pid>.callgrind.<n>`, for `callgrind_annotate`), labelled
    /// `label`, and zeroes them.
    pub(crate) fn dump_profile(&self, label: &str) -> anyhow::Result<()> {
        self.callgrind_control(&format!("--dump={label}"))
    }

    /// Sends `command` to its callgrind with `callgrind_control`.
    fn callgrind_control(&self, command: &str) -> anyhow::Result<()> {
        let status = Command::new("callgrind_control")
            .arg(command)
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run callgrind_control")?;
        anyhow::ensure!(status.success(), "callgrind_control {command} {} failed", self.pid);
        Ok(())
    }

    /// Under callgrind: the instructions its threads executed since the counters were zeroed.
    pub(crate) fn instructions(&self) -> anyhow::Result<u64> {
        let output = Command::new("callgrind_control")
            .arg("-e")
            .arg(self.pid.to_string())
            .output()
            .context("cannot run callgrind_control")?;
        let text = String::from_utf8_lossy(&output.stdout);
        let total = thread_totals(&text);
        anyhow::ensure!(total.is_some(), "no instruction totals from callgrind_control -e {}: {text}", self.pid);
        Ok(total.unwrap_or_default())
    }

    /// CPU seconds used so far by its PostgreSQL cluster (the postmaster and its children).
    pub(crate) fn database_cpu_secs(&self) -> f64 {
        let Some(postmaster) = self.database else { return 0.0 };
        processes().into_iter().filter(|p| p.pid == postmaster || p.ppid == postmaster).map(|p| p.cpu_secs).sum()
    }

    /// Moves its PostgreSQL cluster (the postmaster, and so the backends it forks later, and
    /// the processes it has) to the cores in `cpus`.
    pub(crate) fn pin_database(&self, cpus: &[usize]) -> anyhow::Result<()> {
        let postmaster =
            self.database.with_context(|| format!("{} has no PostgreSQL cluster of its own", self.name))?;
        let mut set = nix::sched::CpuSet::new();
        for &cpu in cpus {
            set.set(cpu).with_context(|| format!("no CPU {cpu}"))?;
        }
        for p in processes().into_iter().filter(|p| p.pid == postmaster || p.ppid == postmaster) {
            // Threads are not used by PostgreSQL: one affinity per process.
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(p.pid as i32), &set)
                .with_context(|| format!("cannot pin PostgreSQL process {}", p.pid))?;
        }
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resident set size in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS for {}", self.name))
    }

    /// User + system CPU seconds used so far, all threads.
    pub(crate) fn cpu_secs(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|stat| parse_stat(&stat))
            .map_or(0.0, |p| p.cpu_secs)
    }
}

/// The sum of the per-thread `Ir` lines of `callgrind_control -e` (`   Th 1  969,232,904`).
fn thread_totals(text: &str) -> Option<u64> {
    let counts: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Th "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|n| n.replace(',', "").parse().ok())
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// One line of `/proc/<pid>/stat`, the parts the benches read.
struct ProcStat {
    pid: u32,
    ppid: u32,
    command: String,
    /// User + system CPU seconds.
    cpu_secs: f64,
}

fn parse_stat(stat: &str) -> Option<ProcStat> {
    // `pid (comm) state ppid …`; the command may hold spaces and parentheses, so split at the
    // last `)`. utime and stime are fields 14 and 15.
    let (head, rest) = stat.rsplit_once(')')?;
    let (pid, command) = head.split_once(" (")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    Some(ProcStat {
        pid: pid.trim().parse().ok()?,
        ppid: u32::try_from(number(1)?).ok()?,
        command: command.to_owned(),
        cpu_secs: (number(11).unwrap_or(0) + number(12).unwrap_or(0)) as f64 / TICKS_PER_SEC,
    })
}

/// Every process on the machine, as far as `/proc` lets us read it.
fn processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect()
}

/// PostgreSQL postmasters running now: `postgres` processes whose parent is not one.
fn postmasters() -> std::collections::BTreeSet<u32> {
    let all = processes();
    let postgres: std::collections::BTreeSet<u32> =
        all.iter().filter(|p| p.command == "postgres").map(|p| p.pid).collect();
    all.iter().filter(|p| p.command == "postgres" && !postgres.contains(&p.ppid)).map(|p| p.pid).collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Machine notes for the result header: CPU model, cores, load average.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, load average {load} at start")
}

/// Busy jiffies and total jiffies over all CPUs, from `/proc/stat`.
fn cpu_jiffies() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().sum();
    // idle and iowait are the 4th and 5th values.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Waits (up to `patience`) until the machine is quiet: less than `max_cores` of CPU busy over
/// a one-second sample while the benchmark itself is idle (between rounds, so whatever is busy
/// is another job). Returns the busy cores of the last sample and whether it had to wait.
pub(crate) async fn wait_quiet(max_cores: f64, patience: Duration) -> (f64, bool) {
    let cores = std::fs::read_to_string("/proc/stat")
        .map(|s| s.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count())
        .unwrap_or(1)
        .max(1) as f64;
    let start = std::time::Instant::now();
    let mut waited = false;
    loop {
        let (busy0, total0) = cpu_jiffies();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (busy1, total1) = cpu_jiffies();
        let busy = if total1 > total0 { (busy1 - busy0) as f64 / (total1 - total0) as f64 * cores } else { 0.0 };
        if busy < max_cores || start.elapsed() >= patience {
            if busy >= max_cores {
                eprintln!("  warning: machine still busy ({busy:.2} cores used by other jobs); measuring anyway");
            }
            return (busy, waited);
        }
        if !waited {
            eprintln!("  other jobs are using {busy:.2} cores; waiting for a quiet machine...");
        }
        waited = true;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_command_with_spaces_and_parentheses() {
        let line = "4242 (post (gres) x) S 17 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 1 0 99 1000 10";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.command, "post (gres) x");
        assert!((stat.cpu_secs - 3.25).abs() < 1e-9, "{}", stat.cpu_secs);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn callgrind_totals_add_up_over_threads() {
        let text = "sending command status internal to pid 7\n\n  Totals:         Ir \n   Th 1  969,232,904 \n   Th 2  1,096 \n";
        assert_eq!(thread_totals(text), Some(969_234_000));
        assert_eq!(thread_totals("  No information available as instrumentation is switched off."), None);
    }

    #[test]
    fn this_process_is_found_with_its_parent() {
        let me = std::process::id();
        let all = processes();
        let found = all.iter().find(|p| p.pid == me).expect("this process is listed");
        assert_eq!(found.ppid, std::os::unix::process::parent_id());
    }
}
