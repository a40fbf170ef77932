//! The machine the figures come from, and CPU time read from `/proc` (Linux): this process's
//! (every in-process service and the benchmark's client) and the whole machine's (adding
//! Postgres, RabbitMQ and SeaweedFS).

use serde::Serialize;

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on every Linux build we know).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs this process may use (`nproc`).
    pub nproc: usize,
    /// `model name` of `/proc/cpuinfo` (what `lscpu` shows).
    pub cpu: String,
    pub accelerator: &'static str,
    /// The cargo profile the benchmark was built with.
    pub profile: &'static str,
}

impl Machine {
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu,
            accelerator: "none (CPU only)",
            profile: if cfg!(debug_assertions) { "dev" } else { "release" },
        }
    }
}

/// CPU seconds used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    /// This process, all threads, user + system.
    pub process_s: f64,
    /// All CPUs of the machine, busy: user, nice, system, irq and softirq (not idle, iowait or
    /// the hypervisor's steal).
    pub machine_busy_s: f64,
}

impl CpuTimes {
    /// Zero where `/proc` cannot be read.
    pub fn now() -> Self {
        Self { process_s: process_seconds().unwrap_or(0.0), machine_busy_s: machine_busy_seconds().unwrap_or(0.0) }
    }

    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes { process_s: self.process_s - earlier.process_s, machine_busy_s: self.machine_busy_s - earlier.machine_busy_s }
    }
}

/// `utime + stime` of `/proc/self/stat` (fields 14 and 15; the command name may hold spaces,
/// so count from its closing parenthesis).
fn process_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal …
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line.split_whitespace().skip(1).take(7).filter_map(|v| v.parse().ok()).collect();
    if ticks.len() < 7 {
        return None;
    }
    Some((ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / USER_HZ)
}

/// The share of the machine's CPUs that other processes kept busy over `span` (this process
/// idle meanwhile): what else was running when the figures were taken.
pub async fn background_busy(span: std::time::Duration, nproc: usize) -> f64 {
    let before = CpuTimes::now();
    tokio::time::sleep(span).await;
    let used = CpuTimes::now().since(before);
    ((used.machine_busy_s - used.process_s) / (span.as_secs_f64() * nproc.max(1) as f64)).max(0.0)
}
