//! The chaos run (`easel-chaos`): the same jobs pushed through the pipeline twice, once
//! undisturbed (the baseline) and once while workers are SIGKILLed and Postgres, RabbitMQ and
//! SeaweedFS restart under them; each run must end with every submission `done` and exactly
//! one result each (docs/PIPELINE.md, section 2), and the chaos run's wall time is set beside
//! the baseline's.
//!
//! Each run is a fresh [`TestApp`] (ingest and api in this process, workers as `easel-worker`
//! processes). The faults restart the machine's shared dependencies, so this is a script and not
//! a test of the suite: it holds the broker lock exclusively ([`crate::BrokerLock`]), so tests
//! on this machine wait for it rather than fail, and it brings each dependency back the way
//! `scripts/services-common.sh` starts it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::FutureExt;
use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::bench::load;
use crate::{TestApp, paintings, repo_root};

/// What the chaos run does.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Submissions per run (the 174 sample paintings, cycled, each under its own external id).
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
    /// Workers running at once (a killed one is replaced).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// How long Postgres, RabbitMQ and SeaweedFS each stay down before they are started again.
    #[arg(long, default_value_t = 5)]
    pub outage_s: u64,
    /// Gives up on a run whose jobs are not all settled within this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_s: u64,
}

/// Paintings per bulk request, and bulk requests in flight (ingest serves two at once).
const BULK_ENTRIES: usize = 100;
const BULK_CONCURRENCY: usize = 2;
/// The competition every run submits to (each run has a database of its own).
const SLUG: &str = "chaos";
/// How long a dependency or a worker gets to answer again after a fault.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(180);

/// One fault of the chaos run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL a worker holding a batch; start a replacement.
    KillWorker,
    /// `rabbitmqctl stop_app`, then `start_app`.
    RestartRabbitMq,
    /// `pg_ctlcluster … stop --mode fast`, then `start`.
    RestartPostgres,
    /// SIGTERM the `weed` process, then start it as `scripts/services-common.sh` does.
    RestartSeaweedFs,
}

/// When each fault strikes: the share of jobs done. Spaced so that each one's recovery is over
/// before the next.
pub const SCHEDULE: [(f64, Fault); 6] = [
    (0.10, Fault::KillWorker),
    (0.25, Fault::KillWorker),
    (0.40, Fault::KillWorker),
    (0.50, Fault::RestartRabbitMq),
    (0.65, Fault::RestartPostgres),
    (0.80, Fault::RestartSeaweedFs),
];

/// A fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub fault: Fault,
    /// Seconds since the first upload.
    pub at_s: f64,
    /// Jobs done, and submissions `processing` (claimed by a worker), when it struck.
    pub done: i64,
    pub processing: i64,
    /// From the fault to the dependency (or the replacement worker) answering again, and every
    /// worker and ingest ready.
    pub recovery_s: f64,
}

/// What the database says at the end of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub submissions: i64,
    pub done: i64,
    pub failed: i64,
    /// `queued` or `processing`: not settled.
    pub unsettled: i64,
    pub results: i64,
    /// Submissions with at least one result.
    pub scored: i64,
    /// Jobs never settled (not accepted, or still queued/processing).
    pub lost: i64,
    /// Results beyond one per submission.
    pub duplicated: i64,
    /// Claims beyond one per submission (`submissions.attempts`): work redone after a fault.
    pub reclaims: i64,
    pub outbox: i64,
}

/// One run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run: &'static str,
    pub jobs: usize,
    pub workers: usize,
    /// First upload sent → every job seen settled in Postgres.
    pub wall_s: f64,
    pub jobs_per_s: f64,
    /// The client's upload time (bulk requests of 100).
    pub upload_s: f64,
    #[serde(flatten)]
    pub counts: Counts,
    pub dead_lettered: u32,
    pub faults: Vec<Injected>,
    /// Every invariant that failed; empty when the run passed.
    pub violations: Vec<String>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Both runs and how they compare.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub baseline_wall_s: f64,
    pub chaos_wall_s: f64,
    /// Chaos wall time over baseline wall time.
    pub ratio: f64,
    pub faults: usize,
    pub passed: bool,
}

/// The baseline run, then the chaos run; after it, the dependencies are checked up again
/// (`scripts/deps-up.sh`) whatever happened.
pub async fn run(options: &Options) -> Result<(Vec<RunReport>, Summary)> {
    if options.jobs == 0 || options.workers == 0 {
        bail!("--jobs and --workers must be at least 1");
    }
    // Built (or found) before the broker lock is taken, so tests do not wait on a build.
    let worker = tokio::task::spawn_blocking(crate::worker_binary).await?;
    eprintln!("worker: {}", worker.display());
    eprintln!("baseline: {} jobs, {} workers, no faults", options.jobs, options.workers);
    let baseline = one_run(options, false).await?;
    eprintln!("{}", baseline.line());
    eprintln!("chaos: {} jobs, {} workers, faults at {}", options.jobs, options.workers, schedule_text());
    let chaos = one_run(options, true).await;
    let deps = deps_up().await;
    let chaos = chaos?;
    deps?;
    eprintln!("{}", chaos.line());
    let summary = Summary {
        baseline_wall_s: baseline.wall_s,
        chaos_wall_s: chaos.wall_s,
        ratio: chaos.wall_s / baseline.wall_s,
        faults: chaos.faults.len(),
        passed: baseline.passed() && chaos.passed(),
    };
    Ok((vec![baseline, chaos], summary))
}

fn schedule_text() -> String {
    SCHEDULE.iter().map(|(share, fault)| format!("{:.0} % {fault:?}", share * 100.0)).collect::<Vec<_>>().join(", ")
}

/// One fresh app, the uploads, the workers, the faults (if `chaos`), the checks.
async fn one_run(options: &Options, chaos: bool) -> Result<RunReport> {
    eprintln!("  taking the broker lock (tests on this machine running now finish first)");
    let mut app = TestApp::options()
        .exclusive_broker()
        // The configured default (config/base.yaml) rather than the test harness's 30 s: an
        // outage is ridden out in place, as in production.
        .configure(|s| s.worker.retry_budget_seconds = crate::base_settings().worker.retry_budget_seconds)
        .spawn()
        .await;
    let response = app.create_competition(SLUG, None).await;
    if !response.status().is_success() {
        bail!("creating the competition: {} {}", response.status(), response.text().await.unwrap_or_default());
    }
    eprintln!("  starting {} workers", options.workers);
    let mut workers = Workers::default();
    for _ in 0..options.workers {
        workers.start(&mut app).await;
    }

    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut upload = Some(upload(&app, options.jobs, chaos, accepted.clone())?);
    let mut upload_s = None;
    let mut schedule: VecDeque<(f64, Fault)> = if chaos { SCHEDULE.into() } else { VecDeque::new() };
    let mut faults = Vec::new();
    let mut violations = Vec::new();
    let timeout = Duration::from_secs(options.timeout_s);
    let mut last_report = Instant::now();
    loop {
        if let Some(task) = upload.take_if(|task| task.is_finished()) {
            upload_s = Some(finish_upload(task).await?);
        }
        // Postgres itself may be down for a moment: a failed count is tried again.
        if let Ok(progress) = Progress::read(&app.pool).await {
            if progress.settled() >= options.jobs as i64 {
                break;
            }
            if let Some(&(share, fault)) = schedule.front()
                && progress.done as f64 >= share * options.jobs as f64
            {
                schedule.pop_front();
                if fault != Fault::KillWorker
                    && let Some(task) = upload.take()
                {
                    // The dependencies restart once every job is in: what is measured is the
                    // pipeline's recovery, not the client's retries.
                    upload_s = Some(finish_upload(task).await?);
                }
                let injected = inject(&mut app, &mut workers, fault, started, options).await?;
                eprintln!(
                    "  {:6.1} s: {:?} at {} done, {} processing; answering again after {:.1} s",
                    injected.at_s, injected.fault, injected.done, injected.processing, injected.recovery_s
                );
                faults.push(injected);
                continue;
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                eprintln!(
                    "  {:6.1} s: {} accepted, {} done, {} failed of {}",
                    started.elapsed().as_secs_f64(),
                    accepted.load(Ordering::Relaxed),
                    progress.done,
                    progress.failed,
                    options.jobs
                );
            }
        }
        if started.elapsed() > timeout {
            violations.push(format!("not every job settled within {timeout:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = started.elapsed();
    if let Some(task) = upload.take() {
        upload_s = Some(finish_upload(task).await?);
    }
    if !schedule.is_empty() {
        violations.push(format!("{} faults never struck (the jobs settled first)", schedule.len()));
    }

    let counts = Counts::read(&app.pool, options.jobs as i64).await?;
    violations.extend(counts.violations(options.jobs as i64));
    if let Err(panic) = std::panic::AssertUnwindSafe(app.assert_exactly_once()).catch_unwind().await {
        let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        violations.push(format!("assert_exactly_once: {}", message.unwrap_or_default()));
    }
    let dead_lettered = app.queue_depth(&format!("{}.dead", app.settings.rabbitmq.queue)).await;
    if !violations.is_empty() {
        eprintln!("{}", evidence(&mut app, &workers).await);
    }
    Ok(RunReport {
        run: if chaos { "chaos" } else { "baseline" },
        jobs: options.jobs,
        workers: options.workers,
        wall_s: wall.as_secs_f64(),
        jobs_per_s: options.jobs as f64 / wall.as_secs_f64(),
        upload_s: upload_s.unwrap_or_default(),
        counts,
        dead_lettered,
        faults,
        violations,
    })
}

/// The uploads, in bulk requests, on a thread of their own; `accepted` counts the jobs in.
fn upload(app: &TestApp, jobs: usize, chaos: bool, accepted: Arc<AtomicUsize>) -> Result<JoinHandle<Result<load::Uploaded>>> {
    let client = load::Client::new(&app.ingest_url, &app.admin_token)?;
    let jobs = load::jobs(paintings(), jobs, if chaos { "chaos" } else { "baseline" });
    let plan = load::Plan { bulk_entries: Some(BULK_ENTRIES), concurrency: BULK_CONCURRENCY };
    Ok(tokio::spawn(async move { Ok(load::on_own_thread(client, SLUG.to_string(), jobs, plan, accepted).await?.0) }))
}

async fn finish_upload(task: JoinHandle<Result<load::Uploaded>>) -> Result<f64> {
    let uploaded = task.await.context("the upload task panicked")?.context("uploading")?;
    Ok(uploaded.wall.as_secs_f64())
}

/// The workers of a run by their [`TestApp::worker`] index, oldest first.
#[derive(Default)]
struct Workers {
    live: VecDeque<usize>,
    started: usize,
}

impl Workers {
    async fn start(&mut self, app: &mut TestApp) {
        app.start_worker().await;
        self.live.push_back(self.started);
        self.started += 1;
    }
}

/// Jobs done and failed so far.
#[derive(Debug, Clone, Copy)]
struct Progress {
    done: i64,
    failed: i64,
    processing: i64,
}

impl Progress {
    async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let (done, failed, processing): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status = 'processing')
             FROM submissions",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self { done, failed, processing })
    }

    fn settled(&self) -> i64 {
        self.done + self.failed
    }
}

impl Counts {
    async fn read(pool: &PgPool, jobs: i64) -> Result<Self> {
        let row: (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status IN ('queued', 'processing')),
                    (SELECT count(*) FROM results), (SELECT count(DISTINCT submission_id) FROM results),
                    coalesce(sum(greatest(attempts - 1, 0)), 0)::int8, (SELECT count(*) FROM outbox)
             FROM submissions",
        )
        .fetch_one(pool)
        .await
        .context("counting submissions and results")?;
        let (submissions, done, failed, unsettled, results, scored, reclaims, outbox) = row;
        Ok(Self {
            submissions,
            done,
            failed,
            unsettled,
            results,
            scored,
            lost: jobs - done - failed,
            duplicated: results - scored,
            reclaims,
            outbox,
        })
    }

    /// The run's invariants: every job done, exactly one result each, nothing failed or left.
    fn violations(&self, jobs: i64) -> Vec<String> {
        let checks = [
            (self.submissions == jobs, format!("{} submissions accepted, not {jobs}", self.submissions)),
            (self.done == jobs, format!("{} submissions done, not {jobs}", self.done)),
            (self.failed == 0, format!("{} submissions failed", self.failed)),
            (self.lost == 0, format!("{} jobs lost (never settled)", self.lost)),
            (self.duplicated == 0, format!("{} duplicated results", self.duplicated)),
            (self.results == jobs, format!("{} results, not {jobs}", self.results)),
            (self.outbox == 0, format!("{} jobs still in the outbox", self.outbox)),
        ];
        checks.into_iter().filter(|(held, _)| !held).map(|(_, violation)| violation).collect()
    }
}

/// What a failed run leaves to look at: the submissions not done, and the workers' last lines.
async fn evidence(app: &mut TestApp, workers: &Workers) -> String {
    let rows: Vec<(uuid::Uuid, String, Option<String>, i32, String)> = sqlx::query_as(
        "SELECT id, status, failure_code, attempts, updated_at::text FROM submissions WHERE status <> 'done'
         ORDER BY updated_at LIMIT 20",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap_or_default();
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&app.pool).await.unwrap_or_default();
    let mut text = format!("submissions not done (database {database}; EASEL_TEST_KEEP=1 keeps it):\n");
    for (id, status, code, attempts, updated) in rows {
        text += &format!("  {id} {status} {} attempts {attempts}, updated {updated}\n", code.unwrap_or_default());
    }
    for &index in &workers.live {
        text += &format!("{}\n", app.worker(index).log_tail(30));
    }
    text
}

/// Strikes `fault` and waits until everything answers again.
async fn inject(app: &mut TestApp, workers: &mut Workers, fault: Fault, started: Instant, options: &Options) -> Result<Injected> {
    let mut progress = Progress::read(&app.pool).await?;
    if fault == Fault::KillWorker {
        // Mid-batch: a moment when some submission is claimed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while progress.processing == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            progress = Progress::read(&app.pool).await?;
        }
    }
    let at = Instant::now();
    let outage = Duration::from_secs(options.outage_s);
    match fault {
        Fault::KillWorker => {
            let victim = workers.live.pop_front().context("no worker left to kill")?;
            app.worker(victim).kill().await;
            workers.start(app).await;
        }
        Fault::RestartRabbitMq => {
            command("rabbitmqctl", &["-q", "stop_app"]).await?;
            tokio::time::sleep(outage).await;
            command("rabbitmqctl", &["-q", "start_app"]).await?;
            command("rabbitmqctl", &["-q", "await_startup", "--timeout", "120"]).await?;
            let url = secrecy::ExposeSecret::expose_secret(&app.settings.rabbitmq.url).to_string();
            wait_until("RabbitMQ accepts connections", || async {
                let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
                connection.close(200, "checked").await?;
                Ok(())
            })
            .await?;
        }
        Fault::RestartPostgres => {
            let version = postgres_version()?;
            command("pg_ctlcluster", &["--skip-systemctl-redirect", &version, "main", "stop", "--mode", "fast"]).await?;
            tokio::time::sleep(outage).await;
            command("pg_ctlcluster", &["--skip-systemctl-redirect", &version, "main", "start"]).await?;
            let pool = app.pool.clone();
            wait_until("Postgres answers", || {
                let pool = pool.clone();
                async move { Ok(easel_core::db::check(&pool).await?) }
            })
            .await?;
        }
        Fault::RestartSeaweedFs => {
            stop_seaweedfs().await?;
            tokio::time::sleep(outage).await;
            // Started again exactly as deps-up.sh starts it.
            command("bash", &["-c", "source scripts/services-common.sh && ensure_seaweedfs"]).await?;
            let (client, bucket) = (crate::s3_client(&app.settings), app.settings.s3.bucket.clone());
            wait_until("SeaweedFS serves the bucket", || async {
                client.head_bucket().bucket(&bucket).send().await?;
                Ok(())
            })
            .await?;
        }
    }
    wait_ready(app, workers).await?;
    Ok(Injected {
        fault,
        at_s: (at - started).as_secs_f64(),
        done: progress.done,
        processing: progress.processing,
        recovery_s: at.elapsed().as_secs_f64(),
    })
}

/// Ingest's and every live worker's `/readyz` answer 200 (database, S3, a broker consumer).
async fn wait_ready(app: &mut TestApp, workers: &Workers) -> Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut urls = vec![format!("{}/readyz", app.ingest_url)];
    urls.extend(workers.live.iter().map(|&index| app.worker(index).url("/readyz")));
    for url in urls {
        let client = client.clone();
        wait_until(&format!("{url} is ready"), || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let response = client.get(&url).send().await?;
                if !response.status().is_success() {
                    bail!("{}: {}", response.status(), response.text().await.unwrap_or_default());
                }
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Tries `check` every 250 ms until it succeeds, for at most [`RECOVERY_TIMEOUT`].
async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() > RECOVERY_TIMEOUT => {
                return Err(e.context(format!("waiting {RECOVERY_TIMEOUT:?} until {what}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs an operator's command in the workspace root; its output goes to stderr.
async fn command(program: &str, args: &[&str]) -> Result<()> {
    let status = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(program).args(args).current_dir(repo_root()).stdout(std::process::Stdio::null()).status(),
    )
    .await
    .with_context(|| format!("{program} {} took over 3 minutes", args.join(" ")))?
    .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {}: {status}", args.join(" "));
    }
    Ok(())
}

/// The newest cluster under /etc/postgresql, the one `ensure_postgres` starts.
fn postgres_version() -> Result<String> {
    let mut versions: Vec<u32> = std::fs::read_dir("/etc/postgresql")
        .context("reading /etc/postgresql (a Debian PostgreSQL, as scripts/deps-up.sh installs)")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions.last().map(u32::to_string).context("no cluster under /etc/postgresql")
}

/// SIGTERM to the `weed` process `ensure_seaweedfs` recorded; waits until it has exited and
/// its S3 port is free (SIGKILL after 30 s).
async fn stop_seaweedfs() -> Result<()> {
    let pid_file = seaweedfs_pid_file();
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {} (SeaweedFS not started by scripts/deps-up.sh?)", pid_file.display()))?
        .trim()
        .to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("weed") {
        bail!("process {pid} of {} is not SeaweedFS", pid_file.display());
    }
    command("kill", &["-TERM", &pid]).await?;
    let started = Instant::now();
    let mut killed = false;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() || port_open(8333).await {
        if !killed && started.elapsed() > Duration::from_secs(30) {
            eprintln!("  SeaweedFS still running 30 s after SIGTERM: SIGKILL");
            let _ = command("kill", &["-KILL", &pid]).await;
            killed = true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("SeaweedFS (pid {pid}) did not stop");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn seaweedfs_pid_file() -> PathBuf {
    repo_root().join(".cache/run/seaweedfs.pid")
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

/// `scripts/deps-up.sh`: whatever a failed run left down comes back.
async fn deps_up() -> Result<()> {
    command("bash", &["scripts/deps-up.sh"]).await.context("bringing the dependencies back up")
}

impl RunReport {
    /// One line for people.
    pub fn line(&self) -> String {
        let c = &self.counts;
        format!(
            "{:8}: {} jobs in {:.1} s ({:.2} jobs/s; uploads {:.1} s), {} faults; {} done, {} failed, {} lost, {} duplicated, \
             {} results, {} reclaims, {} dead-lettered: {}",
            self.run,
            self.jobs,
            self.wall_s,
            self.jobs_per_s,
            self.upload_s,
            self.faults.len(),
            c.done,
            c.failed,
            c.lost,
            c.duplicated,
            c.results,
            c.reclaims,
            self.dead_lettered,
            if self.passed() { "passed".to_string() } else { format!("FAILED ({})", self.violations.join("; ")) }
        )
    }
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "chaos/baseline wall time: {:.1} s / {:.1} s = {:.2} with {} faults; {}",
            self.chaos_wall_s,
            self.baseline_wall_s,
            self.ratio,
            self.faults,
            if self.passed { "every invariant held" } else { "INVARIANTS FAILED" }
        )
    }
}
