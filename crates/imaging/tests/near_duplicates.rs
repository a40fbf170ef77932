//! Near-duplicate detection on the 174 sample paintings (`scripts/fetch-paintings.sh` fetches them
//! into `.cache/paintings`, or set `EASEL_PAINTINGS_DIR`).
//!
//! Each painting is decoded the way ingest decodes it ([`easel_imaging::decode`]) and copied five
//! ways: re-encoded as JPEG at quality 60; resized to 50 % (Lanczos3); cropped 5 % (2.5 % off each
//! of the four sides, keeping the centred 95 % × 95 %); colour-shifted (red × 1.05, blue × 0.95,
//! then +8 on every channel: a warmer, brighter white balance); and all four at once (crop, resize,
//! colour shift, then JPEG q60, the order in which someone would edit and re-save).
//!
//! At [`DEFAULT_MAX_DISTANCE`], no image of one painting may be near any image of another
//! (precision 1.0, no cluster mixes paintings); every re-encoded, resized and colour-shifted copy
//! must be near its original (recall 1.0); cropped copies (alone and with the rest) must be found
//! at least 98 % of the time — a 5 % crop moves a few paintings' hashes as far as the nearest
//! distinct painting, so no 64-bit hash distance separates those perfectly.
//!
//! `compare_hash_algorithms` (ignored: it hashes everything seven times) measures the candidate
//! hashes that [`easel_imaging::phash`] was chosen from:
//! `cargo test -p easel-imaging --test near_duplicates -- --include-ignored --nocapture`.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use easel_imaging::phash::{DEFAULT_MAX_DISTANCE, PerceptualHash, clusters, perceptual_hash_rgb};
use easel_imaging::{DecodeLimits, decode};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{ImageFormat, Rgb, RgbImage};
use image_hasher::{HashAlg, HasherConfig};

/// The edits a second submission of the same painting might have been through.
const TRANSFORMS: [&str; 5] = ["jpeg q60", "resize 50%", "crop 5%", "colour shift", "all four"];

/// The transforms that crop, which the default distance does not always catch.
const CROPPED: [&str; 2] = ["crop 5%", "all four"];

fn paintings_dir() -> PathBuf {
    std::env::var_os("EASEL_PAINTINGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/paintings"))
}

fn jpeg_q60(image: &RgbImage) -> RgbImage {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, 60).encode_image(image).expect("encode");
    image::load_from_memory_with_format(out.get_ref(), ImageFormat::Jpeg).expect("decode").to_rgb8()
}

fn half(image: &RgbImage) -> RgbImage {
    imageops::resize(image, (image.width() / 2).max(1), (image.height() / 2).max(1), FilterType::Lanczos3)
}

fn crop_5_percent(image: &RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let (dx, dy) = ((w as f64 * 0.025).round() as u32, (h as f64 * 0.025).round() as u32);
    imageops::crop_imm(image, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
}

fn colour_shift(image: &RgbImage) -> RgbImage {
    let gain = [1.05f32, 1.0, 0.95];
    let mut out = image.clone();
    for px in out.pixels_mut() {
        *px = Rgb(std::array::from_fn(|c| (f32::from(px[c]) * gain[c] + 8.0).round().clamp(0.0, 255.0) as u8));
    }
    out
}

fn transformed(image: &RgbImage) -> [RgbImage; 5] {
    let all = jpeg_q60(&colour_shift(&half(&crop_5_percent(image))));
    [jpeg_q60(image), half(image), crop_5_percent(image), colour_shift(image), all]
}

/// A painting and its copies, in the order original, then [`TRANSFORMS`].
struct Painting {
    file: String,
    images: Vec<RgbImage>,
}

/// Decodes all sample paintings and makes their copies, once, on all cores.
fn corpus() -> &'static [Painting] {
    static CORPUS: OnceLock<Vec<Painting>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let started = Instant::now();
        let dir = paintings_dir();
        let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap_or_else(|e| {
            panic!("cannot read {}/manifest.jsonl ({e}); run scripts/fetch-paintings.sh first", dir.display())
        });
        let files: Vec<String> = manifest
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a manifest line");
                v["file"].as_str().expect("a file name").to_owned()
            })
            .collect();
        assert!(files.len() >= 100, "expected the 174 sample paintings in {}, found {}", dir.display(), files.len());

        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = files.len().div_ceil(threads);
        let paintings: Vec<Painting> = std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|files| {
                    let dir = &dir;
                    s.spawn(move || {
                        files
                            .iter()
                            .map(|file| {
                                let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
                                let original = decode(&bytes, &DecodeLimits::default())
                                    .unwrap_or_else(|e| panic!("{file}: {e}"))
                                    .rgb;
                                let mut images = vec![original];
                                images.extend(transformed(&images[0]));
                                Painting { file: file.clone(), images }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("a worker")).collect()
        });
        eprintln!("decoded {} paintings and made their copies in {:.1?}", paintings.len(), started.elapsed());
        paintings
    })
}

/// Every image's hash: `hashes[painting][0]` the original, `[1..]` its copies.
fn hash_all(corpus: &[Painting], hash: &(dyn Fn(&RgbImage) -> u64 + Sync)) -> Vec<Vec<u64>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = corpus.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = corpus
            .chunks(chunk)
            .map(|ps| {
                s.spawn(move || ps.iter().map(|p| p.images.iter().map(hash).collect()).collect::<Vec<Vec<u64>>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a worker")).collect()
    })
}

fn dist(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// What one hash does on the corpus.
struct Measurement {
    /// Per transform, the largest original↔copy distance.
    max_copy: Vec<u32>,
    /// The smallest distance between two distinct originals, and which.
    min_distinct: (u32, usize, usize),
    /// The smallest distance between any two images (originals or copies) of distinct paintings.
    min_cross: u32,
    /// Per distance 0..=64, how many pairs are within it: original↔copy pairs (the copies a
    /// submission must be matched with), and pairs of images of distinct paintings (originals or
    /// copies: any of them is a match that must not happen).
    copies_within: Vec<usize>,
    cross_within: Vec<usize>,
    copies: usize,
}

fn measure(hashes: &[Vec<u64>]) -> Measurement {
    let n = hashes.len();
    let t = TRANSFORMS.len();
    let mut max_copy = vec![0; t];
    let mut copy_hist = [0usize; 65];
    for h in hashes {
        for (k, &c) in h[1..].iter().enumerate() {
            let d = dist(h[0], c);
            max_copy[k] = max_copy[k].max(d);
            copy_hist[d as usize] += 1;
        }
    }
    let mut min_distinct = (65, 0, 0);
    let mut cross_hist = [0usize; 65];
    for i in 0..n {
        for j in i + 1..n {
            let d = dist(hashes[i][0], hashes[j][0]);
            if d < min_distinct.0 {
                min_distinct = (d, i, j);
            }
            for &a in &hashes[i] {
                for &b in &hashes[j] {
                    cross_hist[dist(a, b) as usize] += 1;
                }
            }
        }
    }
    let cumulative = |hist: &[usize; 65]| {
        hist.iter()
            .scan(0, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect::<Vec<_>>()
    };
    Measurement {
        max_copy,
        min_distinct,
        min_cross: cross_hist.iter().position(|&c| c > 0).unwrap_or(65) as u32,
        copies_within: cumulative(&copy_hist),
        cross_within: cumulative(&cross_hist),
        copies: n * t,
    }
}

impl Measurement {
    /// Precision and recall of "distance ≤ d means the same painting", for matching a submission
    /// against the stored ones: the true matches are the original↔copy pairs, the false ones the
    /// pairs of images (originals or copies) of distinct paintings.
    fn precision_recall(&self, d: u32) -> (f64, f64, usize) {
        let tp = self.copies_within[d as usize];
        let fp = self.cross_within[d as usize];
        let precision = if tp + fp == 0 { 1.0 } else { tp as f64 / (tp + fp) as f64 };
        (precision, tp as f64 / self.copies as f64, fp)
    }

    fn max_copy(&self) -> u32 {
        *self.max_copy.iter().max().unwrap()
    }

    /// Nearest distinct pair minus farthest copy: positive when some distance separates them.
    fn gap(&self) -> i64 {
        i64::from(self.min_cross) - i64::from(self.max_copy())
    }

    fn print(&self, name: &str) {
        let copies: Vec<String> = TRANSFORMS.iter().zip(&self.max_copy).map(|(t, d)| format!("{t} {d}")).collect();
        eprintln!(
            "{name:<28} max original↔copy: {} | min distinct originals {}, any images {} | gap {}",
            copies.join(", "),
            self.min_distinct.0,
            self.min_cross,
            self.gap()
        );
    }
}

#[test]
fn copies_cluster_with_their_original_and_distinct_paintings_do_not() {
    let corpus = corpus();
    let started = Instant::now();
    let hashes = hash_all(corpus, &|image| perceptual_hash_rgb(image).0);
    eprintln!("hashed {} images in {:.1?}", corpus.len() * (1 + TRANSFORMS.len()), started.elapsed());
    let m = measure(&hashes);

    eprintln!("\nperceptual_hash on {} paintings, default distance {DEFAULT_MAX_DISTANCE}", corpus.len());
    eprintln!("{:<14} {:>8} {:>8} {:>8}", "transform", "max", "mean", "recall");
    for (k, t) in TRANSFORMS.iter().enumerate() {
        let ds: Vec<u32> = hashes.iter().map(|h| dist(h[0], h[k + 1])).collect();
        let mean = ds.iter().sum::<u32>() as f64 / ds.len() as f64;
        let recall = ds.iter().filter(|&&d| d <= DEFAULT_MAX_DISTANCE).count() as f64 / ds.len() as f64;
        eprintln!("{t:<14} {:>8} {mean:>8.2} {recall:>8.3}", m.max_copy[k]);
    }
    let mut worst: Vec<(u32, &str, &str, (u32, u32))> = corpus
        .iter()
        .zip(&hashes)
        .flat_map(|(p, h)| {
            TRANSFORMS
                .iter()
                .enumerate()
                .map(move |(k, t)| (dist(h[0], h[k + 1]), p.file.as_str(), *t, p.images[0].dimensions()))
        })
        .collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.0));
    eprintln!("farthest copies: {:?}", &worst[..12]);
    let (d, i, j) = m.min_distinct;
    eprintln!("min distance between distinct paintings: {d} ({} vs {})", corpus[i].file, corpus[j].file);
    eprintln!("min distance between any images of distinct paintings: {}", m.min_cross);
    eprintln!("{:>8} {:>10} {:>8} {:>6}", "distance", "precision", "recall", "false");
    for d in [4, 6, 8, 10, 12, 14, 16] {
        let (p, r, fp) = m.precision_recall(d);
        eprintln!("{d:>8} {p:>10.4} {r:>8.4} {fp:>6}{}", if d == DEFAULT_MAX_DISTANCE { "  (default)" } else { "" });
    }

    // Recall. Re-encoding, resizing and colour shifts move the hash a few bits at most: every such
    // copy must match. A 5 % crop moves the picture under the DCT's cosines and can move the
    // hash as far as the nearest distinct painting (14 bits here): a few crops are missed
    // rather than risk merging distinct paintings.
    let mut missed = Vec::new();
    for (k, t) in TRANSFORMS.iter().enumerate() {
        let mut found = 0;
        for (p, h) in corpus.iter().zip(&hashes) {
            let d = dist(h[0], h[k + 1]);
            if d <= DEFAULT_MAX_DISTANCE {
                found += 1;
            } else {
                assert!(CROPPED.contains(t), "{}: the {t} copy is {d} bits from the original", p.file);
                missed.push(format!("{} {t} {d}", p.file));
            }
        }
        let recall = found as f64 / corpus.len() as f64;
        assert!(recall >= 0.98, "only {found} of {} {t} copies matched", corpus.len());
    }
    eprintln!("copies missed at the default: {missed:?}");

    // Precision: no image of one painting is near any image of another.
    let (d, i, j) = m.min_distinct;
    assert!(d > DEFAULT_MAX_DISTANCE, "{} and {} are only {d} bits apart", corpus[i].file, corpus[j].file);
    assert!(m.min_cross > DEFAULT_MAX_DISTANCE, "images of distinct paintings are {} bits apart", m.min_cross);
    assert_eq!(m.precision_recall(DEFAULT_MAX_DISTANCE).2, 0);

    // Clustering originals and copies together: every cluster is one painting's, and each
    // painting's original is clustered with (at least) its uncropped copies.
    let items: Vec<((usize, usize), PerceptualHash)> = hashes
        .iter()
        .enumerate()
        .flat_map(|(p, h)| h.iter().enumerate().map(move |(k, &bits)| ((p, k), PerceptualHash(bits))))
        .collect();
    let found = clusters(&items, DEFAULT_MAX_DISTANCE);
    for cluster in &found {
        let p = cluster.members[0].0;
        assert!(cluster.members.iter().all(|&(q, _)| q == p), "{} is clustered with another painting", corpus[p].file);
    }
    for (p, painting) in corpus.iter().enumerate() {
        let cluster = found.iter().find(|c| c.members[0] == (p, 0)).expect("every original is clustered");
        for (k, t) in TRANSFORMS.iter().enumerate() {
            if !CROPPED.contains(t) {
                assert!(cluster.members.contains(&(p, k + 1)), "{}: the {t} copy is not in its cluster", painting.file);
            }
        }
    }
    let clustered = found.iter().map(|c| c.members.len()).sum::<usize>();
    let complete = found.iter().filter(|c| c.members.len() == 1 + TRANSFORMS.len()).count();
    eprintln!(
        "clusters at the default: {} ({complete} with all {} images of a painting), {clustered} of {} images clustered",
        found.len(),
        1 + TRANSFORMS.len(),
        items.len()
    );
}

#[test]
#[ignore = "slow: hashes the corpus with every candidate algorithm; run with --include-ignored --nocapture"]
fn compare_hash_algorithms() {
    let corpus = corpus();
    let to_u64 = |bytes: &[u8]| {
        let mut b = [0u8; 8];
        b[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
        assert!(bytes.len() <= 8, "more than 64 bits");
        u64::from_le_bytes(b)
    };
    let candidates: Vec<(&str, HasherConfig)> = vec![
        ("dct mean 8x8 (pHash)", HasherConfig::new().hash_alg(HashAlg::Mean).preproc_dct()),
        ("dct median 8x8 (pHash)", HasherConfig::new().hash_alg(HashAlg::Median).preproc_dct()),
        ("mean 8x8 (aHash)", HasherConfig::new().hash_alg(HashAlg::Mean)),
        ("gradient 8x8 (dHash)", HasherConfig::new().hash_alg(HashAlg::Gradient)),
        ("double gradient 10x10 60b", HasherConfig::new().hash_alg(HashAlg::DoubleGradient).hash_size(10, 10)),
        ("blockhash 8x8", HasherConfig::new().hash_alg(HashAlg::Blockhash)),
    ];
    let mut results = Vec::new();
    for (name, config) in candidates {
        let hasher = config.to_hasher();
        let started = Instant::now();
        let hashes = hash_all(corpus, &|image| to_u64(hasher.hash_image(image).as_bytes()));
        let m = measure(&hashes);
        m.print(name);
        eprintln!("{:<28} hashed in {:.1?}", "", started.elapsed());
        results.push((name, m));
    }
    for (name, n, offset, filter) in [
        ("classic 32 [0..8] lanczos", 32usize, 0usize, Some(FilterType::Lanczos3)),
        ("classic 32 [1..9] lanczos", 32, 1, Some(FilterType::Lanczos3)),
        ("classic 32 [1..9] triangle", 32, 1, Some(FilterType::Triangle)),
        ("classic 32 [1..9] box", 32, 1, None),
    ] {
        let started = Instant::now();
        let m = measure(&hash_all(corpus, &|image| classic_dct(image, n, offset, filter)));
        m.print(name);
        eprintln!("{:<28} hashed in {:.1?}", "", started.elapsed());
        results.push((name, m));
    }
    let m = measure(&hash_all(corpus, &|image| perceptual_hash_rgb(image).0));
    m.print("phash::perceptual_hash");
    results.push(("phash::perceptual_hash", m));

    eprintln!("\nprecision / recall by distance");
    eprint!("{:<28}", "");
    let ds = [4, 6, 8, 10, 12, 14, 16, 18, 20];
    for d in ds {
        eprint!(" {d:>11}");
    }
    eprintln!();
    for (name, m) in &results {
        eprint!("{name:<28}");
        for d in ds {
            let (p, r, _) = m.precision_recall(d);
            eprint!(" {p:>5.3}/{r:>5.3}");
        }
        eprintln!();
    }
    let best = results.iter().rev().max_by_key(|(_, m)| m.gap()).unwrap();
    eprintln!("widest gap: {} ({})", best.0, best.1.gap());
}

fn classic_dct(image: &RgbImage, n: usize, offset: usize, filter: Option<FilterType>) -> u64 {
    let gray = imageops::grayscale(image);
    let small = match filter {
        Some(filter) => imageops::resize(&gray, n as u32, n as u32, filter),
        None => imageops::thumbnail(&gray, n as u32, n as u32),
    };
    let px: Vec<f64> = small.pixels().map(|p| f64::from(p[0])).collect();
    let k = offset + 8;
    let cos: Vec<f64> = (0..k)
        .flat_map(|u| {
            (0..n).map(move |x| (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * n) as f64).cos())
        })
        .collect();
    // rows: tmp[y][u] = sum_x px[y][x] cos[u][x]
    let mut tmp = vec![0.0; n * k];
    for y in 0..n {
        for u in 0..k {
            tmp[y * k + u] = (0..n).map(|x| px[y * n + x] * cos[u * n + x]).sum();
        }
    }
    let mut coeffs = Vec::with_capacity(64);
    for v in offset..k {
        for u in offset..k {
            coeffs.push((0..n).map(|y| tmp[y * k + u] * cos[v * n + y]).sum::<f64>());
        }
    }
    let mut sorted = coeffs.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = (sorted[31] + sorted[32]) / 2.0;
    coeffs.iter().enumerate().fold(0u64, |acc, (i, &c)| if c > median { acc | 1 << i } else { acc })
}
