//! The pipeline benchmark (`easel-bench`): jobs per second end to end, ingest → S3 → RabbitMQ
//! → worker (the tiny random model) → Postgres, and where each job's time goes.
//!
//! Ingest, api and the worker run in this process on the real Postgres, RabbitMQ and S3 of the
//! machine, against fresh resources of their own (a [`TestApp`]), so they share one Prometheus
//! recorder: the per-stage figures are the stage timers the services keep
//! ([`easel_core::metrics::Stage`]), read before and after the measured window, and the model's
//! idle time between batches. CPU time is accounted by where it went, from each thread's and
//! process's own clock ([`system`]): the model's compute threads, decode and validation (the
//! services' CPU timers), the client (a thread of its own), the rest of this process, and
//! Postgres, RabbitMQ and SeaweedFS. A baseline in the same run calls the same model on the
//! same paintings directly, with no services around.

pub mod baseline;
pub mod load;
pub mod prometheus;
pub mod report;
pub mod system;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use easel_core::configuration::{ComputeDevice, ComputeDtype, Settings};
use easel_worker::startup::Worker;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{TestApp, paintings};
use prometheus::{Snapshot, Window};
use report::{Report, RunInfo};
use system::{CpuTimes, Dependencies, Machine};

/// What the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Submissions to push through the pipeline (the 174 sample paintings, cycled).
    #[arg(long, default_value_t = 522)]
    pub jobs: usize,
    /// Worker batch size (`worker.batch_size`): paintings per model call.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// How long a partial batch waits for more jobs (`worker.batch_timeout_ms`); default: the
    /// configured one (config/; the test harness's 20 ms is not used here).
    #[arg(long)]
    pub batch_timeout_ms: Option<u64>,
    /// Critique length in tokens (`worker.max_new_tokens`).
    #[arg(long, default_value_t = 8)]
    pub max_new_tokens: usize,
    /// Images the worker fetches and decodes at once (`worker.decode_concurrency`); default:
    /// the configured one (config/, `APP_WORKER__DECODE_CONCURRENCY`).
    #[arg(long)]
    pub decode_concurrency: Option<usize>,
    /// Upload requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Upload through `POST /v1/competitions/{slug}/bulk` instead of one request per painting.
    #[arg(long)]
    pub bulk: bool,
    /// Paintings per bulk request (with --bulk).
    #[arg(long, default_value_t = 64, requires = "bulk")]
    pub bulk_entries: usize,
    /// Start the worker only once every upload is accepted (ingest and worker then do not
    /// compete for the CPU; end to end still runs from the first upload to the last result).
    #[arg(long)]
    pub phased: bool,
    /// Jobs sent through the whole pipeline before measuring (connections, first allocations).
    #[arg(long, default_value_t = 16)]
    pub warmup: usize,
    /// Paintings for the baseline (decode + model called directly); 0 skips it.
    #[arg(long, default_value_t = 174)]
    pub baseline_images: usize,
    /// Gives up if the jobs are not all settled within this many seconds.
    #[arg(long, default_value_t = 240)]
    pub timeout_s: u64,
}

/// Runs the benchmark: the baseline, then the pipeline. Resources are dropped on return.
pub async fn run(options: &Options) -> Result<Report> {
    if options.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let started_at = chrono::Utc::now();
    easel_core::metrics::install();
    let paintings = paintings();
    let app = {
        let (options, configured) = (options.clone(), crate::base_settings());
        TestApp::options()
            .without_services()
            .configure(move |s| configure(s, &options, &configured))
            .spawn()
            .await
    };
    let mut app = app;

    let nproc = Machine::this().nproc;
    // What else keeps the CPUs busy (other builds and tests skew every figure here).
    let mut background = system::background_busy(Duration::from_secs(1), nproc).await;
    let baseline = if options.baseline_images > 0 {
        eprintln!("baseline: {} paintings through decode and the model, no services", options.baseline_images);
        let (settings, n) = (app.settings.clone(), options.baseline_images);
        Some(tokio::task::spawn_blocking(move || baseline::measure(&settings, paintings, n)).await??)
    } else {
        None
    };

    app.start_services().await?;
    let mut worker = Some(RunningWorker::start(&app.settings).await?);

    if options.warmup > 0 {
        eprintln!("warm-up: {} jobs", options.warmup);
        create_competition(&app, "bench-warmup").await?;
        let jobs = load::jobs(paintings, options.warmup, "warmup");
        let client = load::Client::new(&app.ingest_url, &app.admin_token)?;
        load::single(&client, "bench-warmup", &jobs, options.concurrency, &AtomicUsize::new(0)).await?;
        wait_until_settled(&app, "bench-warmup", options.warmup, Duration::from_secs(options.timeout_s), None).await?;
    }
    // The measured window gets a worker of its own, built (model loaded) now, so that its
    // model-idle timer starts at its first batch rather than at the warm-up's last. It consumes
    // from the first upload, or (phased) only after the last.
    if let Some(w) = worker.take() {
        w.stop().await?;
    }
    let mut waiting_worker = Some(Worker::build(app.settings.clone()).await.context("starting the worker")?);

    let slug = "bench";
    create_competition(&app, slug).await?;
    let jobs = load::jobs(paintings, options.jobs, "bench");
    let accepted = Arc::new(AtomicUsize::new(0));
    eprintln!(
        "measuring: {} jobs, {} uploads, {} in flight{}",
        options.jobs,
        if options.bulk { "bulk" } else { "single" },
        options.concurrency,
        if options.phased { ", worker after the uploads" } else { "" }
    );

    background = background.max(system::background_busy(Duration::from_secs(1), nproc).await);
    if background > 0.05 {
        eprintln!("warning: other processes kept {:.0} % of the CPUs busy just before measuring", background * 100.0);
    }
    // What Postgres, RabbitMQ and SeaweedFS use with no jobs (timers, checkpoints, heartbeats)
    // is not charged to the jobs.
    let idle = system::dependencies_idle(Duration::from_secs(2)).await;
    let client = load::Client::new(&app.ingest_url, &app.admin_token)?;
    let plan = load::Plan { bulk_entries: options.bulk.then_some(options.bulk_entries), concurrency: options.concurrency };
    let start = Mark::now();
    if !options.phased {
        worker = waiting_worker.take().map(RunningWorker::run);
    }
    // Phased: the moment the uploads are in and the worker starts splits the window in two.
    let mut switch = None;
    let upload = async {
        let uploaded = load::on_own_thread(client, slug.to_string(), jobs, plan, accepted.clone()).await;
        if let (Ok(_), Some(w)) = (&uploaded, waiting_worker.take()) {
            switch = Some(Mark::now());
            worker = Some(RunningWorker::run(w));
        }
        uploaded
    };
    let settle = wait_until_settled(&app, slug, options.jobs, Duration::from_secs(options.timeout_s), Some(&accepted));
    // A failed upload ends the run at once rather than at the settling timeout.
    let ((uploaded, client_cpu), settled) = tokio::try_join!(upload, settle)?;
    let end = Mark::now();
    let wall = end.at - start.at;
    let client_s = client_cpu.as_secs_f64();
    let (use_of_cpu, window) = end.since(&start, client_s, idle);
    let phases = switch.map(|switch| {
        // The client thread ended with the uploads: all its time is the first phase's.
        let (ingest, ingest_window) = switch.since(&start, client_s, idle);
        let (worker, worker_window) = end.since(&switch, 0.0, idle);
        report::Phases {
            ingest: report::CpuSplit::new(&ingest, &ingest_window, options.jobs as f64),
            ingest_s: (switch.at - start.at).as_secs_f64(),
            worker: report::CpuSplit::new(&worker, &worker_window, options.jobs as f64),
            worker_s: (end.at - switch.at).as_secs_f64(),
        }
    });

    if let Some(w) = worker.take() {
        w.stop().await?;
    }
    app.stop_services().await;
    let results = result_stats(&app, slug).await?;

    let run = RunInfo::new(started_at, Machine::this(), options, &app.settings);
    Ok(Report::new(run, &window, wall, &uploaded, settled, results, use_of_cpu, phases, background, baseline))
}

/// The recorder and the CPU clocks at one moment of the measured window.
struct Mark {
    at: Instant,
    metrics: Snapshot,
    cpu: CpuTimes,
    dependencies: Dependencies,
    model_pool_s: f64,
}

impl Mark {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            metrics: Snapshot::take(),
            cpu: CpuTimes::now(),
            dependencies: Dependencies::now(),
            model_pool_s: system::model_pool_seconds(),
        }
    }

    /// What was used since `earlier`: `client_s` of it on the client thread; `idle` is what
    /// the other processes use per second with no jobs.
    fn since(&self, earlier: &Mark, client_s: f64, idle: Dependencies) -> (report::CpuUse, Window) {
        let seconds = (self.at - earlier.at).as_secs_f64();
        let used = report::CpuUse {
            times: self.cpu.since(earlier.cpu),
            client_s,
            model_pool_s: self.model_pool_s - earlier.model_pool_s,
            dependencies: self.dependencies.since(earlier.dependencies).less_idle(idle, seconds),
        };
        (used, Window { before: earlier.metrics.clone(), after: self.metrics.clone() })
    }
}

fn configure(settings: &mut Settings, options: &Options, configured: &Settings) {
    let worker = &mut settings.worker;
    worker.batch_size = options.batch_size.max(1);
    worker.batch_timeout_ms = options.batch_timeout_ms.unwrap_or(configured.worker.batch_timeout_ms);
    worker.max_new_tokens = Some(options.max_new_tokens);
    worker.device = ComputeDevice::Cpu;
    worker.dtype = ComputeDtype::F32;
    worker.decode_concurrency = options.decode_concurrency.unwrap_or(configured.worker.decode_concurrency).max(1);
}

/// The worker, in this process, consuming until stopped.
struct RunningWorker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<()>>,
}

impl RunningWorker {
    async fn start(settings: &Settings) -> Result<Self> {
        Ok(Self::run(Worker::build(settings.clone()).await.context("starting the worker")?))
    }

    fn run(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the worker task panicked")?
    }
}

async fn create_competition(app: &TestApp, slug: &str) -> Result<()> {
    let response = app.create_competition(slug, None).await;
    let status = response.status();
    if !status.is_success() {
        bail!("creating competition {slug}: {status} {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Jobs of a competition that ended done or failed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settled {
    pub done: usize,
    pub failed: usize,
}

/// Polls Postgres (every 250 ms: the polls' own cost stays far below a job's) until `expected`
/// submissions of `slug` are done or failed, printing progress.
async fn wait_until_settled(
    app: &TestApp,
    slug: &str,
    expected: usize,
    timeout: Duration,
    accepted: Option<&AtomicUsize>,
) -> Result<Settled> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE s.status = 'done'), count(*) FILTER (WHERE s.status = 'failed')
             FROM submissions s JOIN competitions c ON c.id = s.competition_id WHERE c.slug = $1",
        )
        .bind(slug)
        .fetch_one(&app.pool)
        .await
        .context("counting settled submissions")?;
        let settled = Settled { done: done as usize, failed: failed as usize };
        if settled.done + settled.failed >= expected {
            return Ok(settled);
        }
        if started.elapsed() > timeout {
            bail!("only {} of {expected} jobs settled within {timeout:?}", settled.done + settled.failed);
        }
        if let Some(accepted) = accepted
            && last_report.elapsed() >= Duration::from_secs(2)
        {
            last_report = Instant::now();
            eprintln!(
                "  {:5.1} s: {} accepted, {} done, {} failed of {expected}",
                started.elapsed().as_secs_f64(),
                accepted.load(Ordering::Relaxed),
                settled.done,
                settled.failed
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the result rows say: seconds from a submission's row to its result's row (each
/// stamped at its transaction's start), and the model's own split of a batch's time, per job.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ResultStats {
    pub latency_p50_s: f64,
    pub latency_p95_s: f64,
    pub latency_max_s: f64,
    /// Vision tower, regression head, critique (prompt, prefill, decoding): batch time over
    /// batch size, averaged over the jobs.
    pub vision_ms_per_job: f64,
    pub head_ms_per_job: f64,
    pub generate_ms_per_job: f64,
}

async fn result_stats(app: &TestApp, slug: &str) -> Result<ResultStats> {
    type Row = (Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>);
    let row: Row = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.95) WITHIN GROUP (ORDER BY d), max(d),
                avg(vision / n), avg(head / n), avg(generate / n)
         FROM (SELECT extract(epoch FROM r.created_at - s.created_at)::float8 AS d,
                      (r.timings->>'vision_ms')::float8 AS vision, (r.timings->>'head_ms')::float8 AS head,
                      (r.timings->>'generate_ms')::float8 AS generate,
                      greatest((r.timings->>'batch_size')::float8, 1) AS n
               FROM results r JOIN submissions s ON s.id = r.submission_id
               JOIN competitions c ON c.id = s.competition_id WHERE c.slug = $1) AS t",
    )
    .bind(slug)
    .fetch_one(&app.pool)
    .await
    .context("reading the result rows")?;
    let v = |x: Option<f64>| x.unwrap_or(0.0);
    Ok(ResultStats {
        latency_p50_s: v(row.0),
        latency_p95_s: v(row.1),
        latency_max_s: v(row.2),
        vision_ms_per_job: v(row.3),
        head_ms_per_job: v(row.4),
        generate_ms_per_job: v(row.5),
    })
}
