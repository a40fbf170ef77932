//! What the benchmark found: per-stage cost per job, throughput, the baseline and the ratios
//! between them, as a table for people and JSON lines for tools.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use easel_core::configuration::Settings;
use easel_core::metrics::{
    BATCH_SIZE, HTTP_REQUEST_DURATION_SECONDS, MODEL_IDLE_SECONDS, QUEUE_WAIT_SECONDS, STAGE_CPU_SECONDS, STAGE_JOBS_TOTAL, STAGE_SECONDS,
};
use serde::Serialize;

use super::baseline::Baseline;
use super::load::Uploaded;
use super::prometheus::Window;
use super::system::{CpuTimes, Dependencies, Machine};
use super::{Options, ResultStats, Settled};

/// The transport target of the issue: everything but decode, preprocess and model.
pub const TRANSPORT_TARGET_MS: f64 = 2.0;
/// The images per second an H100 worker is expected to take (the sizing question).
pub const GPU_IMAGES_PER_S: f64 = 300.0;

/// What a stage's time is spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Moving a job between services: HTTP, S3, SQL, the queue.
    Transport,
    /// Image decoding (ingest's validation, the worker's decode + resize + patchify).
    Decode,
    Model,
}

/// The stages the services time, in the order a job meets them.
const STAGES: [(&str, &str, &str, Class); 10] = [
    ("validate", "validate: sniff, full decode, sha256", "ingest", Class::Decode),
    ("store", "store: S3 PutObject", "ingest", Class::Transport),
    ("insert", "insert: submission + outbox rows", "ingest", Class::Transport),
    ("publish", "publish: outbox → RabbitMQ, confirmed", "ingest", Class::Transport),
    ("fetch", "fetch: S3 GetObject", "worker", Class::Transport),
    ("decode", "decode + resize + patchify", "worker", Class::Decode),
    ("claim", "claim: mark batch processing", "worker", Class::Transport),
    ("model", "model: scores + critique", "worker", Class::Model),
    ("db", "db: the batch's result transaction", "worker", Class::Transport),
    ("ack", "ack: settle the deliveries", "worker", Class::Transport),
];

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub jobs: usize,
    pub distinct_paintings: usize,
    pub upload: &'static str,
    pub concurrency: usize,
    pub bulk_entries: Option<usize>,
    pub phased: bool,
    pub warmup: usize,
    pub batch_size: usize,
    pub batch_timeout_ms: u64,
    pub max_new_tokens: usize,
    pub decode_concurrency: usize,
    pub model: String,
}

impl RunInfo {
    pub fn new(date: DateTime<Utc>, machine: Machine, options: &Options, settings: &Settings) -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self {
            date: date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            command: format!("cargo run -p easel-tests --bin easel-bench -- {}", args.join(" ")).trim_end().to_string(),
            machine,
            jobs: options.jobs,
            distinct_paintings: crate::paintings().len(),
            upload: if options.bulk { "bulk" } else { "single" },
            concurrency: options.concurrency,
            bulk_entries: options.bulk.then_some(options.bulk_entries),
            phased: options.phased,
            warmup: options.warmup,
            batch_size: settings.worker.batch_size,
            batch_timeout_ms: settings.worker.batch_timeout_ms,
            max_new_tokens: options.max_new_tokens,
            decode_concurrency: settings.worker.decode_concurrency,
            model: "tiny preset, random weights, f32 on CPU".into(),
        }
    }
}

/// One timed stage over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct StageCost {
    pub stage: &'static str,
    pub what: &'static str,
    pub service: &'static str,
    pub class: Class,
    /// Seconds summed over its timings.
    pub seconds: f64,
    /// Timings (a batch stage is timed once per batch).
    pub calls: u64,
    /// Jobs those timings covered.
    pub jobs: u64,
    /// `seconds / jobs`; none where it cannot be separated.
    pub ms_per_job: Option<f64>,
}

/// The CPU time the measured window used, read from `/proc` and the services' CPU timers.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub times: CpuTimes,
    /// The client thread (HTTP uploads).
    pub client_s: f64,
    /// The model's compute threads (rayon's pool and candle's).
    pub model_pool_s: f64,
    /// The other processes, less what they use idle.
    pub dependencies: Dependencies,
}

/// CPU milliseconds per job, by where they went. Accounting, not sampling: every figure is a
/// thread's or process's own CPU clock, so the parts are exact and add up to the machine's use
/// (less idle use and the short-lived threads' rounding).
#[derive(Debug, Clone, Serialize)]
pub struct CpuSplit {
    /// The model: its compute threads plus the thread that calls it (`easel_stage_cpu_seconds`).
    pub model: f64,
    /// The worker's decode + resize + patchify (its CPU timer).
    pub decode: f64,
    /// Ingest's validation: sniffing, a full decode under the limits, sha256 (its CPU timer).
    pub validate: f64,
    /// The benchmark's HTTP client (its own thread).
    pub client: f64,
    /// Ingest, worker and api in this process less all of the above: serving HTTP and
    /// multipart, the S3, Postgres and AMQP clients, the outbox relay, batching, metrics, logs,
    /// the async runtime, and the benchmark's progress polls (4 a second).
    pub services_transport: f64,
    /// The backing services, each less what it uses idle.
    pub postgres: f64,
    pub rabbitmq: f64,
    pub seaweedfs: f64,
    /// Everything else on the machine, less its idle use.
    pub other_processes: f64,
    /// Everything but decode, preprocess and model that a job makes the machine do: the
    /// services' transport work + Postgres + RabbitMQ + SeaweedFS.
    pub transport: f64,
    pub transport_target_ms: f64,
    pub transport_within_target: bool,
}

/// A phased run's CPU split in its two phases: uploads with no worker consuming, then the
/// worker alone working off the backlog (ingest idle). Per job of the whole run in both.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub ingest: CpuSplit,
    pub ingest_s: f64,
    pub worker: CpuSplit,
    pub worker_s: f64,
}

impl CpuSplit {
    pub fn new(use_of_cpu: &CpuUse, window: &Window, jobs: f64) -> Self {
        let cpu_sum = format!("{STAGE_CPU_SECONDS}_sum");
        let stage_s = |stage| window.delta(&cpu_sum, &[("stage", stage)]);
        let per_job = |seconds: f64| seconds * 1e3 / jobs;
        let model = per_job(use_of_cpu.model_pool_s + stage_s("model"));
        let (decode, validate, client) = (per_job(stage_s("decode")), per_job(stage_s("validate")), per_job(use_of_cpu.client_s));
        let services_transport = per_job(use_of_cpu.times.process_s) - model - decode - validate - client;
        let d = use_of_cpu.dependencies.scaled(1e3 / jobs);
        let transport = services_transport + d.postgres + d.rabbitmq + d.seaweedfs;
        Self {
            model,
            decode,
            validate,
            client,
            services_transport,
            postgres: d.postgres,
            rabbitmq: d.rabbitmq,
            seaweedfs: d.seaweedfs,
            other_processes: d.others,
            transport,
            transport_target_ms: TRANSPORT_TARGET_MS,
            transport_within_target: transport <= TRANSPORT_TARGET_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub jobs: usize,
    pub done: usize,
    pub failed: usize,
    /// First upload sent to last result seen (Postgres polled every 250 ms).
    pub wall_s: f64,
    pub jobs_per_s: f64,
    /// First upload sent to last upload answered.
    pub upload_wall_s: f64,
    pub uploads_per_s: f64,
    pub upload_requests: usize,
    /// Client-side, per request (send to full answer, queueing in the server included).
    pub upload_latency_ms_p50: f64,
    pub upload_latency_ms_p95: f64,
    /// Ingest's own request timer per job (the handler, from routing to the response).
    pub http_request_ms_per_job: f64,
    /// Submission row to result row, and the model's split of its time.
    pub results: ResultStats,
    /// Jobs per model call.
    pub mean_batch: f64,
    /// The model's unused time between batches (`easel_model_idle_seconds`), per job: waiting
    /// for jobs, for a batch's claim, for images not yet fetched or decoded. From the first
    /// measured batch on, so it counts the time uploads took to arrive as well; with a backlog
    /// (phased) it is the pipeline's cost on the model's time.
    pub model_idle_ms_per_job: f64,
    /// Publication to delivery, as the worker sees it. AMQP timestamps are whole seconds, so
    /// each sample reads up to 1 s high.
    pub queue_wait_s_mean: f64,
    /// The transport rows (class `transport`) summed, per job: latency, not cost (the rows
    /// of different jobs overlap; see [`CpuSplit::transport`] for what they cost).
    pub transport_ms_per_job: f64,
    pub transport_target_ms: f64,
    pub transport_within_target: bool,
    /// Transport plus ingest's validation decode.
    pub transport_and_validation_ms_per_job: f64,
    /// The worker's decode + resize + patchify, wall time inside the pipeline (shares the CPU).
    pub decode_ms_per_job: f64,
    pub model_ms_per_job: f64,
    /// CPU time per job: the whole machine, this process (ingest, api, worker, the client), and
    /// the rest (Postgres, RabbitMQ, SeaweedFS, anything else running).
    pub machine_cpu_ms_per_job: f64,
    pub process_cpu_ms_per_job: f64,
    pub other_cpu_ms_per_job: f64,
    /// Busy CPU time over wall time × cores.
    pub machine_busy_fraction: f64,
    /// The share of the CPUs other processes used in 1 s idle spans before the baseline and
    /// before the measured window (the larger); figures taken above a few per cent are skewed.
    pub background_busy_fraction: f64,
}

/// Pipeline figures over the same figures of the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// (wall / jobs) ÷ (baseline decode + model per job).
    pub cost_per_job: f64,
    /// Baseline jobs/s ÷ pipeline jobs/s (the same number, said as throughput).
    pub throughput_loss: f64,
    pub model_ms_per_job: f64,
    pub decode_ms_per_image: f64,
    /// Machine CPU per job ÷ baseline CPU per job.
    pub cpu_ms_per_job: f64,
    /// Transport per job ÷ baseline cost per job.
    pub transport_share_of_baseline: f64,
    /// Machine CPU per job beyond the baseline's: ingest's validation decode, HTTP, S3, SQL and
    /// the queue, in this process and in Postgres, RabbitMQ and SeaweedFS.
    pub cpu_overhead_ms_per_job: f64,
}

/// Cores of decode + preprocess a GPU worker pod needs to feed the GPU.
#[derive(Debug, Clone, Serialize)]
pub struct Sizing {
    pub images_per_s: f64,
    /// Per image on one core (the baseline's, measured alone; else the pipeline's).
    pub decode_ms_per_image_per_core: f64,
    pub measured_by: &'static str,
    pub max_pixels: Option<usize>,
    pub mean_source_megapixels: Option<f64>,
    pub cores: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub stages: Vec<StageCost>,
    pub summary: Summary,
    pub cpu: CpuSplit,
    pub phases: Option<Phases>,
    pub baseline: Option<Baseline>,
    pub ratios: Option<Ratios>,
    pub sizing: Sizing,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run: RunInfo,
        window: &Window,
        wall: Duration,
        uploaded: &Uploaded,
        settled: Settled,
        results: ResultStats,
        use_of_cpu: CpuUse,
        phases: Option<Phases>,
        background_busy_fraction: f64,
        baseline: Option<Baseline>,
    ) -> Self {
        let sum = format!("{STAGE_SECONDS}_sum");
        let count = format!("{STAGE_SECONDS}_count");
        let mut stages: Vec<StageCost> = STAGES
            .iter()
            .map(|&(stage, what, service, class)| {
                let filter = [("stage", stage)];
                let seconds = window.delta(&sum, &filter);
                let jobs = window.delta(STAGE_JOBS_TOTAL, &filter);
                StageCost {
                    stage,
                    what,
                    service,
                    class,
                    seconds,
                    calls: window.delta(&count, &filter).round() as u64,
                    jobs: jobs.round() as u64,
                    ms_per_job: (jobs > 0.0).then(|| seconds * 1e3 / jobs),
                }
            })
            .collect();
        let ms = |stages: &[StageCost], id: &str| stages.iter().find(|s| s.stage == id).and_then(|s| s.ms_per_job).unwrap_or(0.0);

        // Ingest's request timer, less the stages inside the handler: multipart parsing, the
        // competition and external-id lookups, the response. A bulk request stages several
        // files at once, so there the difference means nothing.
        let path = if run.upload == "bulk" { "/v1/competitions/{slug}/bulk" } else { "/v1/competitions/{slug}/submissions" };
        let filter = [("method", "POST"), ("path", path)];
        let http_seconds = window.delta(&format!("{HTTP_REQUEST_DURATION_SECONDS}_sum"), &filter);
        let http_calls = window.delta(&format!("{HTTP_REQUEST_DURATION_SECONDS}_count"), &filter);
        let accepted = uploaded.accepted.max(1) as f64;
        let http_request_ms = http_seconds * 1e3 / accepted;
        let overhead =
            (run.upload == "single").then(|| http_request_ms - ms(&stages, "validate") - ms(&stages, "store") - ms(&stages, "insert"));
        stages.insert(
            0,
            StageCost {
                stage: "http",
                what: if overhead.is_some() {
                    "HTTP handler less validate/store/insert"
                } else {
                    "HTTP handler (bulk: not separable)"
                },
                service: "ingest",
                class: Class::Transport,
                seconds: overhead.map_or(http_seconds, |ms| ms * accepted / 1e3),
                calls: http_calls.round() as u64,
                jobs: uploaded.accepted as u64,
                ms_per_job: overhead,
            },
        );

        let class_ms = |class| stages.iter().filter(|s| s.class == class).filter_map(|s| s.ms_per_job).sum::<f64>();
        let transport = class_ms(Class::Transport);
        let jobs = run.jobs as f64;
        let wall_s = wall.as_secs_f64();
        let upload_wall_s = uploaded.wall.as_secs_f64();
        let mut latencies = uploaded.latency_ms.clone();
        latencies.sort_by(f64::total_cmp);
        let pct = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0.0);
        let per = |sum: &str, count: &str| {
            let n = window.delta(count, &[]);
            if n > 0.0 { window.delta(sum, &[]) / n } else { 0.0 }
        };
        let cpu = use_of_cpu.times;
        let summary = Summary {
            jobs: run.jobs,
            done: settled.done,
            failed: settled.failed,
            wall_s,
            jobs_per_s: jobs / wall_s,
            upload_wall_s,
            uploads_per_s: uploaded.accepted as f64 / upload_wall_s,
            upload_requests: uploaded.requests,
            upload_latency_ms_p50: pct(0.5),
            upload_latency_ms_p95: pct(0.95),
            http_request_ms_per_job: http_request_ms,
            results,
            mean_batch: per(&format!("{BATCH_SIZE}_sum"), &format!("{BATCH_SIZE}_count")),
            model_idle_ms_per_job: window.delta(&format!("{MODEL_IDLE_SECONDS}_sum"), &[]) * 1e3 / jobs,
            queue_wait_s_mean: per(&format!("{QUEUE_WAIT_SECONDS}_sum"), &format!("{QUEUE_WAIT_SECONDS}_count")),
            transport_ms_per_job: transport,
            transport_target_ms: TRANSPORT_TARGET_MS,
            transport_within_target: transport <= TRANSPORT_TARGET_MS,
            transport_and_validation_ms_per_job: transport + ms(&stages, "validate"),
            decode_ms_per_job: ms(&stages, "decode"),
            model_ms_per_job: ms(&stages, "model"),
            machine_cpu_ms_per_job: cpu.machine_busy_s * 1e3 / jobs,
            process_cpu_ms_per_job: cpu.process_s * 1e3 / jobs,
            other_cpu_ms_per_job: (cpu.machine_busy_s - cpu.process_s) * 1e3 / jobs,
            machine_busy_fraction: cpu.machine_busy_s / (wall_s * run.machine.nproc as f64),
            background_busy_fraction,
        };

        let ratios = baseline.as_ref().map(|b| Ratios {
            cost_per_job: (wall_s * 1e3 / jobs) / b.cost_ms_per_job,
            throughput_loss: b.jobs_per_s / summary.jobs_per_s,
            model_ms_per_job: summary.model_ms_per_job / b.model_ms_per_job,
            decode_ms_per_image: summary.decode_ms_per_job / b.decode_ms_per_image,
            cpu_ms_per_job: summary.machine_cpu_ms_per_job / b.cpu_ms_per_job,
            transport_share_of_baseline: transport / b.cost_ms_per_job,
            cpu_overhead_ms_per_job: summary.machine_cpu_ms_per_job - b.cpu_ms_per_job,
        });
        let sizing = match &baseline {
            Some(b) => Sizing {
                images_per_s: GPU_IMAGES_PER_S,
                decode_ms_per_image_per_core: b.decode_ms_per_image,
                measured_by: "baseline: one thread, nothing else running",
                max_pixels: Some(b.max_pixels),
                mean_source_megapixels: Some(b.mean_source_megapixels),
                cores: GPU_IMAGES_PER_S * b.decode_ms_per_image / 1e3,
            },
            None => Sizing {
                images_per_s: GPU_IMAGES_PER_S,
                decode_ms_per_image_per_core: summary.decode_ms_per_job,
                measured_by: "pipeline: wall time while sharing the CPU (an upper bound)",
                max_pixels: None,
                mean_source_megapixels: None,
                cores: GPU_IMAGES_PER_S * summary.decode_ms_per_job / 1e3,
            },
        };
        let cpu = CpuSplit::new(&use_of_cpu, window, jobs);
        Report { run, stages, summary, cpu, phases, baseline, ratios, sizing }
    }

    /// One JSON object per line: `run`, one `stage` per stage, `summary`, `baseline`, `ratios`,
    /// `sizing`, each tagged with `record`.
    pub fn json_lines(&self) -> Vec<String> {
        /// Four decimals: microseconds for milliseconds, more than the figures can claim.
        fn round(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Number(n) if n.is_f64() => {
                    let x = n.as_f64().unwrap_or(0.0);
                    *value = serde_json::json!((x * 1e4).round() / 1e4);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(round),
                serde_json::Value::Object(fields) => fields.values_mut().for_each(round),
                _ => {}
            }
        }
        fn tagged(record: &str, value: impl Serialize) -> String {
            let mut value = serde_json::to_value(value).expect("a report serialises");
            round(&mut value);
            if let Some(object) = value.as_object_mut() {
                object.insert("record".into(), record.into());
            }
            value.to_string()
        }
        let mut lines = vec![tagged("run", &self.run)];
        lines.extend(self.stages.iter().map(|s| tagged("stage", s)));
        lines.push(tagged("summary", &self.summary));
        lines.push(tagged("cpu", &self.cpu));
        if let Some(p) = &self.phases {
            lines.push(tagged("phases", p));
        }
        if let Some(b) = &self.baseline {
            lines.push(tagged("baseline", b));
        }
        if let Some(r) = &self.ratios {
            lines.push(tagged("ratios", r));
        }
        lines.push(tagged("sizing", &self.sizing));
        lines
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let (r, s) = (&self.run, &self.summary);
        let mut out = String::new();
        let _ = writeln!(out, "Easel pipeline benchmark, {}", r.date);
        let _ = writeln!(
            out,
            "machine: {} cores ({}), {}; {} profile",
            r.machine.nproc, r.machine.cpu, r.machine.accelerator, r.machine.profile
        );
        let _ = writeln!(out, "command: {}", r.command);
        let upload = match r.bulk_entries {
            Some(n) => format!("bulk requests of {n}"),
            None => "one request per painting".into(),
        };
        let _ = writeln!(
            out,
            "run: {} jobs ({} paintings cycled), {upload}, {} in flight, worker {}, batch {} (timeout {} ms), {} new tokens, decode concurrency {}; {}",
            r.jobs,
            r.distinct_paintings,
            r.concurrency,
            if r.phased { "started after the uploads" } else { "consuming during the uploads" },
            r.batch_size,
            r.batch_timeout_ms,
            r.max_new_tokens,
            r.decode_concurrency,
            r.model
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "end to end   {} done, {} failed in {:.2} s = {:.1} jobs/s (first upload sent → last result seen)",
            s.done, s.failed, s.wall_s, s.jobs_per_s
        );
        let _ = writeln!(
            out,
            "uploads      {} jobs in {} requests in {:.2} s = {:.1} jobs/s; per request p50 {:.1} ms, p95 {:.1} ms (client side)",
            s.jobs, s.upload_requests, s.upload_wall_s, s.uploads_per_s, s.upload_latency_ms_p50, s.upload_latency_ms_p95
        );
        let _ = writeln!(
            out,
            "latency      submission row → result row p50 {:.2} s, p95 {:.2} s, max {:.2} s; mean model batch {:.1}",
            s.results.latency_p50_s, s.results.latency_p95_s, s.results.latency_max_s, s.mean_batch
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "per-stage wall clock per job, from the services' stage timers (stages of different jobs overlap):");
        let _ = writeln!(out, "{:<44} {:<7} {:<10} {:>9} {:>7}", "stage", "service", "class", "ms/job", "timings");
        for stage in &self.stages {
            let ms = stage.ms_per_job.map_or_else(|| "—".to_string(), |ms| format!("{ms:.3}"));
            let class = format!("{:?}", stage.class).to_lowercase();
            let _ = writeln!(out, "{:<44} {:<7} {:<10} {:>9} {:>7}", stage.what, stage.service, class, ms, stage.calls);
        }
        let _ = writeln!(
            out,
            "{:<63} {:>9.3}   (latency; the cost is in the CPU split below)",
            "transport latency (the transport rows)", s.transport_ms_per_job
        );
        let _ = writeln!(out, "{:<63} {:>9.3}", "  + ingest validation", s.transport_and_validation_ms_per_job);
        let _ = writeln!(out, "{:<63} {:>9.3}", "model idle between batches (waiting on the pipeline)", s.model_idle_ms_per_job);
        let _ = writeln!(
            out,
            "{:<63} {:>9.3}",
            "  model: vision tower + head + critique, per the model's timer",
            s.results.vision_ms_per_job + s.results.head_ms_per_job + s.results.generate_ms_per_job
        );
        let _ = writeln!(
            out,
            "{:<63} {:>9.3} / {:.3} / {:.3}",
            "    vision / head / critique",
            s.results.vision_ms_per_job,
            s.results.head_ms_per_job,
            s.results.generate_ms_per_job
        );
        let _ = writeln!(out, "{:<63} {:>9.3}", "HTTP request, ingest's timer", s.http_request_ms_per_job);
        let _ = writeln!(out, "{:<63} {:>9.3}", "queue wait, mean (whole-second timestamps: reads high)", s.queue_wait_s_mean * 1e3);
        let _ = writeln!(
            out,
            "CPU          machine {:.1} ms/job = this process {:.1} + Postgres/RabbitMQ/SeaweedFS/other {:.1}; {:.0} % of {} cores busy",
            s.machine_cpu_ms_per_job,
            s.process_cpu_ms_per_job,
            s.other_cpu_ms_per_job,
            s.machine_busy_fraction * 100.0,
            r.machine.nproc
        );
        let _ = writeln!(out, "background   other processes used {:.0} % of the CPUs just before measuring", s.background_busy_fraction * 100.0);
        let c = &self.cpu;
        let verdict = if c.transport_within_target {
            "within".to_string()
        } else {
            format!("over, ×{:.2}", c.transport / c.transport_target_ms)
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "CPU per job by where it went (each thread's or process's own clock; dependencies less their idle use):");
        for (what, ms) in [
            ("model: compute threads + calling thread", c.model),
            ("decode + resize + patchify (worker)", c.decode),
            ("validation: sniff, decode, sha256 (ingest)", c.validate),
            ("benchmark client (its own thread)", c.client),
            ("services' transport: HTTP, S3/SQL/AMQP clients, relay, runtime", c.services_transport),
            ("Postgres", c.postgres),
            ("RabbitMQ", c.rabbitmq),
            ("SeaweedFS", c.seaweedfs),
            ("other processes", c.other_processes),
        ] {
            let _ = writeln!(out, "  {what:<61} {ms:>9.3}");
        }
        let _ = writeln!(
            out,
            "{:<63} {:>9.3}   target ≤ {} ms: {verdict}",
            "transport overhead: services' transport + Postgres/RabbitMQ/S3", c.transport, c.transport_target_ms
        );
        if let Some(p) = &self.phases {
            let _ = writeln!(
                out,
                "phases (ms per job): uploads alone {:.1} s | worker alone {:.1} s",
                p.ingest_s, p.worker_s
            );
            for (what, a, b) in [
                ("model", p.ingest.model, p.worker.model),
                ("decode (worker) / validation (ingest)", p.ingest.decode + p.ingest.validate, p.worker.decode + p.worker.validate),
                ("services' transport", p.ingest.services_transport, p.worker.services_transport),
                ("Postgres", p.ingest.postgres, p.worker.postgres),
                ("RabbitMQ", p.ingest.rabbitmq, p.worker.rabbitmq),
                ("SeaweedFS", p.ingest.seaweedfs, p.worker.seaweedfs),
                ("transport", p.ingest.transport, p.worker.transport),
            ] {
                let _ = writeln!(out, "  {what:<61} {a:>9.3} | {b:>9.3}");
            }
        }
        if let (Some(b), Some(x)) = (&self.baseline, &self.ratios) {
            let _ = writeln!(out);
            let _ = writeln!(out, "baseline (same run, same model and paintings, no services; {} images)", b.images);
            let _ = writeln!(
                out,
                "  decode + preprocess, one thread       {:>8.3} ms/image (p95 {:.2}; ≤ {} px, sources {:.2} MP mean)",
                b.decode_ms_per_image, b.decode_p95_ms, b.max_pixels, b.mean_source_megapixels
            );
            let _ = writeln!(out, "  model, batches of {:<3}                {:>8.3} ms/job", r.batch_size, b.model_ms_per_job);
            let _ = writeln!(
                out,
                "  together                              {:>8.3} ms/job = {:.1} jobs/s; CPU {:.1} ms/job",
                b.cost_ms_per_job, b.jobs_per_s, b.cpu_ms_per_job
            );
            let _ = writeln!(out, "ratios, pipeline ÷ baseline");
            let _ = writeln!(out, "  cost per job (wall/jobs ÷ decode+model)   {:>6.2}×", x.cost_per_job);
            let _ = writeln!(out, "  model ms/job                             {:>6.2}×", x.model_ms_per_job);
            let _ = writeln!(out, "  decode + preprocess ms/image             {:>6.2}×", x.decode_ms_per_image);
            let _ = writeln!(out, "  CPU per job (machine ÷ baseline process) {:>6.2}×", x.cpu_ms_per_job);
            let _ = writeln!(out, "  transport ÷ baseline cost per job        {:>6.3}", x.transport_share_of_baseline);
            let _ = writeln!(out, "  machine CPU per job beyond the baseline  {:>6.1} ms", x.cpu_overhead_ms_per_job);
        }
        let z = &self.sizing;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "sizing: {:.0} images/s × {:.2} ms/image/core = {:.1} cores of decode + preprocess per GPU worker pod ({})",
            z.images_per_s, z.decode_ms_per_image_per_core, z.cores, z.measured_by
        );
        out
    }
}
