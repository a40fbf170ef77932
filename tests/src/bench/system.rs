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

/// `utime + stime` of this process (all its threads, dead ones included).
fn process_seconds() -> Option<f64> {
    stat_cpu("/proc/self/stat").map(|(_, seconds)| seconds)
}

/// The command name and `utime + stime` of a `/proc/…/stat` file (fields 2, 14 and 15; the
/// name may hold spaces, so count from its closing parenthesis).
fn stat_cpu(path: impl AsRef<std::path::Path>) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((stat[open + 1..close].to_string(), (utime + stime) / USER_HZ))
}

/// The name the benchmark gives the threads of rayon's global pool, which candle's CPU matrix
/// work (gemm) and the tokenizer run on.
pub const MODEL_POOL_THREAD: &str = "model-pool";
/// The names of candle's own compute threads (its barrier pool for element-wise work).
const CANDLE_THREADS: &str = "candle-";

/// CPU seconds of this process's model compute threads: [`MODEL_POOL_THREAD`]s and candle's
/// own (they live as long as the process).
pub fn model_pool_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    tasks
        .filter_map(|task| stat_cpu(task.ok()?.path().join("stat")))
        .filter(|(name, _)| name.starts_with(MODEL_POOL_THREAD) || name.starts_with(CANDLE_THREADS))
        .map(|(_, seconds)| seconds)
        .sum()
}

/// CPU seconds of the other processes on the machine, by what they are: the services the
/// pipeline talks to, and everything else.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Dependencies {
    pub postgres: f64,
    pub rabbitmq: f64,
    pub seaweedfs: f64,
    pub others: f64,
}

impl Dependencies {
    /// Every process but this one, from `/proc/<pid>/stat` (processes that ended since an
    /// earlier reading drop out of the sums: Postgres' pooled backends and the brokers do not).
    pub fn now() -> Self {
        let me = std::process::id().to_string();
        let mut sums = Self::default();
        let Ok(entries) = std::fs::read_dir("/proc") else { return sums };
        for entry in entries.flatten() {
            let pid = entry.file_name();
            let pid = pid.to_string_lossy();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                continue;
            }
            let Some((name, seconds)) = stat_cpu(entry.path().join("stat")) else { continue };
            let group = match name.as_str() {
                n if n.starts_with("postgres") => &mut sums.postgres,
                "beam.smp" | "erl_child_setup" | "epmd" | "inet_gethost" => &mut sums.rabbitmq,
                "weed" => &mut sums.seaweedfs,
                _ => &mut sums.others,
            };
            *group += seconds;
        }
        sums
    }

    pub fn since(self, earlier: Self) -> Self {
        self.zip(earlier, |a, b| a - b)
    }

    /// Each group's CPU seconds less `idle`'s rate over `seconds` (what it uses with no jobs),
    /// never below zero.
    pub fn less_idle(self, idle_per_s: Self, seconds: f64) -> Self {
        self.zip(idle_per_s, |used, rate| (used - rate * seconds).max(0.0))
    }

    pub fn scaled(self, factor: f64) -> Self {
        self.zip(self, |a, _| a * factor)
    }

    fn zip(self, other: Self, f: impl Fn(f64, f64) -> f64) -> Self {
        Self {
            postgres: f(self.postgres, other.postgres),
            rabbitmq: f(self.rabbitmq, other.rabbitmq),
            seaweedfs: f(self.seaweedfs, other.seaweedfs),
            others: f(self.others, other.others),
        }
    }
}

/// What the other processes use per second with nothing sent to them (over `span`).
pub async fn dependencies_idle(span: std::time::Duration) -> Dependencies {
    let before = Dependencies::now();
    tokio::time::sleep(span).await;
    Dependencies::now().since(before).scaled(1.0 / span.as_secs_f64())
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
