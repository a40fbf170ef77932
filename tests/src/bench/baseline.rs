//! The baseline of the same run: the same paintings through the same model, loaded the way the
//! worker loads it, called directly (no HTTP, S3, queue or database). Decoding runs on one
//! thread, so its time is the cost per image per core; the model gets the whole machine, as
//! it does in the worker.

use std::time::Instant;

use anyhow::{Context, Result};
use easel_core::configuration::Settings;
use easel_model::ArtworkInput;
use serde::Serialize;

use super::system::CpuTimes;
use crate::Painting;

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub images: usize,
    /// The processor's pixel cap (what each painting is resized to at most).
    pub max_pixels: usize,
    /// Mean size of the decoded sources, before resizing.
    pub mean_source_megapixels: f64,
    /// Decode + resize + normalise/patchify, one image at a time on one thread.
    pub decode_ms_per_image: f64,
    pub decode_p95_ms: f64,
    /// Model calls in batches of `worker.batch_size`, per painting.
    pub model_ms_per_job: f64,
    /// decode + model: what one painting costs with nothing around it.
    pub cost_ms_per_job: f64,
    pub jobs_per_s: f64,
    /// This process's CPU time per painting (decode and the model's threads).
    pub cpu_ms_per_job: f64,
}

/// Runs `images` paintings (cycling the set) through decode and the model; blocking.
pub fn measure(settings: &Settings, paintings: &[Painting], images: usize) -> Result<Baseline> {
    let assessor = easel_worker::model::load(&settings.worker).context("loading the model for the baseline")?;
    let processor = assessor.processor().clone();
    let limits = settings.ingest.decode_limits();
    let batch = settings.worker.batch_size.max(1);
    let prepare = |painting: &Painting| -> Result<ArtworkInput> {
        let image = processor.prepare_bytes(&painting.bytes, &limits).with_context(|| painting.file.clone())?;
        Ok(ArtworkInput { image, description: Some(painting.description.clone()) })
    };

    // One untimed batch: first-call allocations are not the steady state the pipeline sees.
    let warm: Vec<ArtworkInput> = paintings.iter().take(batch).map(prepare).collect::<Result<_>>()?;
    assessor.assess(&warm).context("the baseline's warm-up batch")?;

    let cpu = CpuTimes::now();
    let (mut decode_ms, mut model_ms, mut megapixels) = (Vec::with_capacity(images), 0.0, 0.0);
    let order: Vec<&Painting> = paintings.iter().cycle().take(images).collect();
    // Batch by batch, so only one batch of patchified images is held at once.
    for chunk in order.chunks(batch) {
        let mut inputs = Vec::with_capacity(chunk.len());
        for painting in chunk {
            let started = Instant::now();
            let input = prepare(painting)?;
            decode_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let (w, h) = input.image.source_size;
            megapixels += f64::from(w) * f64::from(h) / 1e6;
            inputs.push(input);
        }
        let started = Instant::now();
        let assessed = assessor.assess(&inputs).context("a baseline batch")?;
        model_ms += started.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(assessed);
    }
    let cpu = CpuTimes::now().since(cpu);

    let n = decode_ms.len().max(1) as f64;
    let decode_mean = decode_ms.iter().sum::<f64>() / n;
    decode_ms.sort_by(f64::total_cmp);
    let p95 = decode_ms.get((decode_ms.len() * 95 / 100).min(decode_ms.len().saturating_sub(1))).copied().unwrap_or(0.0);
    let model = model_ms / n;
    let cost = decode_mean + model;
    Ok(Baseline {
        images: decode_ms.len(),
        max_pixels: processor.config().max_pixels,
        mean_source_megapixels: megapixels / n,
        decode_ms_per_image: decode_mean,
        decode_p95_ms: p95,
        model_ms_per_job: model,
        cost_ms_per_job: cost,
        jobs_per_s: 1e3 / cost,
        cpu_ms_per_job: cpu.process_s * 1e3 / n,
    })
}
