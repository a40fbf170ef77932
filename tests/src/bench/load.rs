//! The benchmark's client: pushes the paintings through ingest's HTTP API, one submission per
//! request or many per bulk request, a fixed number of requests in flight. The measured load
//! runs on a thread of its own ([`on_own_thread`]), so its CPU time is told apart from the
//! services'.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;

use crate::{Painting, SubmitForm};

/// Ingest's HTTP API, as the benchmark calls it.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub ingest_url: String,
}

impl Client {
    /// A client with a connection pool of its own, sending `token` as its API key.
    pub fn new(ingest_url: &str, token: &str) -> Result<Self> {
        Ok(Self { http: crate::client_with_key(Some(token))?, ingest_url: ingest_url.to_string() })
    }
}

/// How to upload: one request per job, or bulk requests of `bulk_entries`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub bulk_entries: Option<usize>,
    pub concurrency: usize,
}

/// Runs the uploads on a new thread (`bench-client`) with a single-threaded runtime of its own,
/// and returns with them the CPU time that thread used: the client's share of the machine.
pub async fn on_own_thread(
    client: Client,
    slug: String,
    jobs: Vec<Job<'static>>,
    plan: Plan,
    accepted: Arc<AtomicUsize>,
) -> Result<(Uploaded, Duration)> {
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || {
            let uploaded = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the client's runtime")
                .and_then(|runtime| {
                    runtime.block_on(async {
                        match plan.bulk_entries {
                            Some(n) => bulk(&client, &slug, &jobs, n, plan.concurrency, &accepted).await,
                            None => single(&client, &slug, &jobs, plan.concurrency, &accepted).await,
                        }
                    })
                });
            let _ = done.send(uploaded.map(|u| (u, easel_core::metrics::thread_cpu_time())));
        })
        .context("starting the client thread")?;
    answer.await.context("the client thread ended without an answer")?
}

/// One submission to make: a painting under an external id of its own.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub painting: &'a Painting,
    pub external_id: String,
}

/// `n` submissions cycling through `paintings`, external ids `{prefix}-{i}-{museum id}`.
pub fn jobs<'a>(paintings: &'a [Painting], n: usize, prefix: &str) -> Vec<Job<'a>> {
    paintings
        .iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, painting)| Job { painting, external_id: format!("{prefix}-{i:05}-{}", painting.external_id) })
        .collect()
}

/// How the uploads went, seen from the client.
#[derive(Debug, Clone, Default)]
pub struct Uploaded {
    pub requests: usize,
    pub accepted: usize,
    /// Per request, send to full answer.
    pub latency_ms: Vec<f64>,
    /// First request sent to last answer.
    pub wall: Duration,
}

/// `POST /v1/competitions/{slug}/submissions` per job, `concurrency` at once; `accepted` counts
/// the jobs accepted so far.
pub async fn single(client: &Client, slug: &str, jobs: &[Job<'_>], concurrency: usize, accepted: &AtomicUsize) -> Result<Uploaded> {
    let started = Instant::now();
    let url = &format!("{}/v1/competitions/{slug}/submissions", client.ingest_url);
    let answers: Vec<Result<f64>> = futures::stream::iter(jobs)
        .map(|job| async move {
            let form = SubmitForm::painting(job.painting).external_id(&job.external_id).into_multipart();
            let sent = Instant::now();
            let response = client.http.post(url).multipart(form).send().await?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let latency = sent.elapsed().as_secs_f64() * 1e3;
            ensure!(status == reqwest::StatusCode::ACCEPTED, "submitting {}: {status} {body}", job.external_id);
            accepted.fetch_add(1, Ordering::Relaxed);
            Ok(latency)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let latency_ms = answers.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok(Uploaded { requests: latency_ms.len(), accepted: latency_ms.len(), latency_ms, wall: started.elapsed() })
}

/// `POST /v1/competitions/{slug}/bulk` with `per_request` jobs each (a JSON-lines manifest,
/// then one `files` part per painting), `concurrency` requests at once.
pub async fn bulk(
    client: &Client,
    slug: &str,
    jobs: &[Job<'_>],
    per_request: usize,
    concurrency: usize,
    accepted: &AtomicUsize,
) -> Result<Uploaded> {
    let started = Instant::now();
    let url = format!("{}/v1/competitions/{slug}/bulk", client.ingest_url);
    let answers: Vec<Result<(f64, usize)>> = futures::stream::iter(jobs.chunks(per_request.max(1)))
        .map(|chunk| {
            let url = url.clone();
            async move {
                let form = bulk_form(chunk)?;
                let sent = Instant::now();
                let response = client.http.post(&url).multipart(form).send().await?;
                let status = response.status();
                let body: serde_json::Value = response.json().await?;
                let latency = sent.elapsed().as_secs_f64() * 1e3;
                let took = body["accepted"].as_u64().unwrap_or(0) as usize;
                if !status.is_success() || took != chunk.len() {
                    bail!("a bulk request of {} accepted {took}: {status} {body}", chunk.len());
                }
                accepted.fetch_add(took, Ordering::Relaxed);
                Ok((latency, took))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let answers = answers.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(Uploaded {
        requests: answers.len(),
        accepted: answers.iter().map(|(_, n)| n).sum(),
        latency_ms: answers.iter().map(|(ms, _)| *ms).collect(),
        wall: started.elapsed(),
    })
}

/// The manifest names each file `{i}-{file}`: a bulk request refuses a name listed twice, and
/// the paintings repeat when jobs outnumber them.
fn bulk_form(chunk: &[Job<'_>]) -> Result<reqwest::multipart::Form> {
    let names: Vec<String> = chunk.iter().map(|job| format!("{}-{}", job.external_id, job.painting.file)).collect();
    let mut manifest = Vec::new();
    for (job, name) in chunk.iter().zip(&names) {
        let line = serde_json::json!({ "file": name, "external_id": job.external_id, "description": job.painting.description });
        serde_json::to_writer(&mut manifest, &line)?;
        manifest.push(b'\n');
    }
    let part = reqwest::multipart::Part::bytes(manifest).file_name("manifest.jsonl").mime_str("application/x-ndjson")?;
    let mut form = reqwest::multipart::Form::new().part("manifest", part);
    for (job, name) in chunk.iter().zip(names) {
        let part = reqwest::multipart::Part::bytes(job.painting.bytes.clone()).file_name(name).mime_str("image/jpeg")?;
        form = form.part("files", part);
    }
    Ok(form)
}
