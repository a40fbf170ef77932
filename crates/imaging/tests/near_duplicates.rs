//! Near-duplicate detection on the 174 sample paintings (`scripts/fetch-paintings.sh` fetches them
//! into `.cache/paintings`, or set `EASEL_PAINTINGS_DIR`).
//!
//! Each painting is decoded the way ingest decodes it ([`easel_imaging::decode`]) and copied five
//! ways: re-encoded as JPEG at quality 60; resized to 50 % (Lanczos3); cropped 5 % (2.5 % off each
//! of the four sides, keeping the centred 95 % × 95 %); colour-shifted (red × 1.05, blue × 0.95,
//! then +8 on every channel: a warmer, brighter white balance); and all four at once (crop, resize,
//! colour shift, then JPEG q60, the order in which someone would edit and re-save).
//!
//! At [`DEFAULT_MAX_DISTANCE`], every copy of every kind must be near its original (recall 1.0),
//! no image of one painting may be near any image of another (precision 1.0), and clustering all
//! the images must give back each painting's six images as one cluster.
//!
//! Ignored (slow, or printing only), run with `-- --ignored --nocapture`:
//! `compare_hash_algorithms` measures the candidate hashes [`easel_imaging::phash`] was chosen
//! from; `other_crops` measures crops other than the tested 2.5 % a side; `hashing_cost` times
//! [`perceptual_hash_rgb`] on a 600×400 and a 24-megapixel image.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use easel_imaging::phash::{DEFAULT_MAX_DISTANCE, MAX_DISTANCE_LIMIT, PerceptualHash, clusters, perceptual_hash_rgb};
use easel_imaging::{DecodeLimits, decode};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{GrayImage, ImageFormat, Rgb, RgbImage};
use image_hasher::{HashAlg, Hasher, HasherConfig};

/// The edits a second submission of the same painting might have been through.
const TRANSFORMS: [&str; 5] = ["jpeg q60", "resize 50%", "crop 5%", "colour shift", "all four"];

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
fn hash_all<H: Send>(corpus: &[Painting], hash: &(dyn Fn(&RgbImage) -> H + Sync)) -> Vec<Vec<H>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = corpus.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = corpus
            .chunks(chunk)
            .map(|ps| s.spawn(move || ps.iter().map(|p| p.images.iter().map(hash).collect()).collect::<Vec<Vec<H>>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a worker")).collect()
    })
}

/// A distance between two hashes of one kind.
type Distance<'a, H> = &'a (dyn Fn(&H, &H) -> u32 + Sync);

/// What one hash does on the corpus.
struct Measurement {
    /// Per transform, the largest original↔copy distance.
    max_copy: Vec<u32>,
    /// Per transform, the mean original↔copy distance.
    mean_copy: Vec<f64>,
    /// The smallest distance between two distinct originals, and which.
    min_distinct: (u32, usize, usize),
    /// The smallest distance between any two images (originals or copies) of distinct paintings.
    min_cross: u32,
    /// Per distance 0..=bits, how many pairs are within it: original↔copy pairs (the copies a
    /// submission must be matched with), and pairs of images of distinct paintings (originals or
    /// copies: any of them is a match that must not happen).
    copies_within: Vec<usize>,
    cross_within: Vec<usize>,
    copies: usize,
}

/// Measures `hashes` (from [`hash_all`]) under `dist`, whose values are at most `bits`.
fn measure<H: Sync>(hashes: &[Vec<H>], dist: Distance<H>, bits: u32) -> Measurement {
    let n = hashes.len();
    let t = TRANSFORMS.len();
    let mut max_copy = vec![0; t];
    let mut sum_copy = vec![0u32; t];
    let mut copy_hist = vec![0usize; bits as usize + 1];
    for h in hashes {
        for (k, c) in h[1..].iter().enumerate() {
            let d = dist(&h[0], c);
            max_copy[k] = max_copy[k].max(d);
            sum_copy[k] += d;
            copy_hist[d as usize] += 1;
        }
    }
    let mut min_distinct = (u32::MAX, 0, 0);
    let mut cross_hist = vec![0usize; bits as usize + 1];
    for i in 0..n {
        for j in i + 1..n {
            let d = dist(&hashes[i][0], &hashes[j][0]);
            if d < min_distinct.0 {
                min_distinct = (d, i, j);
            }
            for a in &hashes[i] {
                for b in &hashes[j] {
                    cross_hist[dist(a, b) as usize] += 1;
                }
            }
        }
    }
    let cumulative = |hist: &[usize]| {
        hist.iter()
            .scan(0, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect::<Vec<_>>()
    };
    Measurement {
        max_copy,
        mean_copy: sum_copy.iter().map(|&s| f64::from(s) / n as f64).collect(),
        min_distinct,
        min_cross: cross_hist.iter().position(|&c| c > 0).unwrap_or(cross_hist.len()) as u32,
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
        let d = (d as usize).min(self.copies_within.len() - 1);
        let tp = self.copies_within[d];
        let fp = self.cross_within[d];
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

    fn print(&self, name: &str, bits: u32) {
        let copies: Vec<String> = TRANSFORMS.iter().zip(&self.max_copy).map(|(t, d)| format!("{t} {d}")).collect();
        eprintln!(
            "{name:<34} {bits:>3} bits | max original↔copy: {} | min distinct originals {}, any images {} | gap {} ({:.1} % of the bits)",
            copies.join(", "),
            self.min_distinct.0,
            self.min_cross,
            self.gap(),
            100.0 * self.gap() as f64 / f64::from(bits)
        );
    }
}

fn phash_distance(a: &PerceptualHash, b: &PerceptualHash) -> u32 {
    a.distance(*b)
}

#[test]
fn copies_cluster_with_their_original_and_distinct_paintings_do_not() {
    let corpus = corpus();
    let started = Instant::now();
    let hashes = hash_all(corpus, &perceptual_hash_rgb);
    eprintln!("hashed {} images in {:.1?}", corpus.len() * (1 + TRANSFORMS.len()), started.elapsed());
    let bits = 2 * MAX_DISTANCE_LIMIT;
    let m = measure(&hashes, &phash_distance, bits);

    eprintln!("\nperceptual_hash on {} paintings, default distance {DEFAULT_MAX_DISTANCE}", corpus.len());
    eprintln!("{:<14} {:>8} {:>8} {:>8}", "transform", "max", "mean", "recall");
    for (k, t) in TRANSFORMS.iter().enumerate() {
        let found = hashes.iter().filter(|h| h[0].distance(h[k + 1]) <= DEFAULT_MAX_DISTANCE).count();
        let recall = found as f64 / corpus.len() as f64;
        eprintln!("{t:<14} {:>8} {:>8.2} {recall:>8.3}", m.max_copy[k], m.mean_copy[k]);
    }
    let mut worst: Vec<(u32, &str, &str)> = corpus
        .iter()
        .zip(&hashes)
        .flat_map(|(p, h)| {
            TRANSFORMS.iter().enumerate().map(move |(k, t)| (h[0].distance(h[k + 1]), p.file.as_str(), *t))
        })
        .collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.0));
    eprintln!("farthest copies: {:?}", &worst[..8]);
    let (d, i, j) = m.min_distinct;
    eprintln!("min distance between distinct paintings: {d} ({} vs {})", corpus[i].file, corpus[j].file);
    eprintln!("min distance between any images of distinct paintings: {}", m.min_cross);
    eprintln!("gap: {} (farthest copy {}, nearest distinct {})", m.gap(), m.max_copy(), m.min_cross);
    eprintln!("{:>8} {:>10} {:>8} {:>6}", "distance", "precision", "recall", "false");
    for d in [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48] {
        let (p, r, fp) = m.precision_recall(d);
        eprintln!("{d:>8} {p:>10.4} {r:>8.4} {fp:>6}{}", if d == DEFAULT_MAX_DISTANCE { "  (default)" } else { "" });
    }

    // Recall: every copy of every kind, crops and all four edits included, is near its original.
    for (k, t) in TRANSFORMS.iter().enumerate() {
        for (p, h) in corpus.iter().zip(&hashes) {
            let d = h[0].distance(h[k + 1]);
            assert!(d <= DEFAULT_MAX_DISTANCE, "{}: the {t} copy is {d} from the original", p.file);
        }
    }
    assert_eq!(m.precision_recall(DEFAULT_MAX_DISTANCE).1, 1.0);

    // Precision: no image of one painting is near any image of another.
    let (d, i, j) = m.min_distinct;
    assert!(d > DEFAULT_MAX_DISTANCE, "{} and {} are only {d} apart", corpus[i].file, corpus[j].file);
    assert!(m.min_cross > DEFAULT_MAX_DISTANCE, "images of distinct paintings are {} apart", m.min_cross);
    assert_eq!(m.precision_recall(DEFAULT_MAX_DISTANCE).2, 0);

    // Clustering originals and copies together gives back each painting's six images, alone.
    let items: Vec<((usize, usize), PerceptualHash)> = hashes
        .iter()
        .enumerate()
        .flat_map(|(p, h)| h.iter().enumerate().map(move |(k, &hash)| ((p, k), hash)))
        .collect();
    let started = Instant::now();
    let found = clusters(&items, DEFAULT_MAX_DISTANCE);
    eprintln!("clustered {} images in {:.1?}: {} clusters", items.len(), started.elapsed(), found.len());
    assert_eq!(found.len(), corpus.len());
    for (p, cluster) in found.iter().enumerate() {
        let expected: Vec<(usize, usize)> = (0..=TRANSFORMS.len()).map(|k| (p, k)).collect();
        assert_eq!(cluster.members, expected, "{}'s cluster", corpus[p].file);
    }
}

/// The crops that [`other_crops`] tries: the fraction cut off the left, top, right and bottom.
const OTHER_CROPS: [(&str, [f64; 4]); 7] = [
    ("1.25% a side", [0.0125; 4]),
    ("2.5% a side", [0.025; 4]),
    ("4% a side", [0.04; 4]),
    ("5% a side", [0.05; 4]),
    ("5% off the left", [0.05, 0.0, 0.0, 0.0]),
    ("2.5% top+bottom", [0.0, 0.025, 0.0, 0.025]),
    ("2.5% top+left", [0.025, 0.025, 0.0, 0.0]),
];

fn crop_sides(image: &RgbImage, [l, t, r, b]: [f64; 4]) -> RgbImage {
    let (w, h) = image.dimensions();
    let (x0, y0) = ((w as f64 * l).round() as u32, (h as f64 * t).round() as u32);
    let (x1, y1) = (w - (w as f64 * r).round() as u32, h - (h as f64 * b).round() as u32);
    imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image()
}

#[test]
#[ignore = "prints only: how far crops other than 2.5 % a side move the hash"]
fn other_crops() {
    let corpus = corpus();
    let distances: Vec<Vec<u32>> = std::thread::scope(|s| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let handles: Vec<_> = corpus
            .chunks(corpus.len().div_ceil(threads))
            .map(|ps| {
                s.spawn(move || {
                    ps.iter()
                        .map(|p| {
                            let original = perceptual_hash_rgb(&p.images[0]);
                            OTHER_CROPS
                                .iter()
                                .map(|(_, sides)| {
                                    perceptual_hash_rgb(&crop_sides(&p.images[0], *sides)).distance(original)
                                })
                                .collect::<Vec<u32>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a worker")).collect()
    });
    eprintln!("{:<18} {:>5} {:>7} {:>17}", "crop", "max", "mean", "recall at default");
    for (k, (name, _)) in OTHER_CROPS.iter().enumerate() {
        let ds: Vec<u32> = distances.iter().map(|d| d[k]).collect();
        let found = ds.iter().filter(|&&d| d <= DEFAULT_MAX_DISTANCE).count();
        eprintln!(
            "{name:<18} {:>5} {:>7.2} {:>17.3}",
            ds.iter().max().unwrap(),
            f64::from(ds.iter().sum::<u32>()) / ds.len() as f64,
            found as f64 / ds.len() as f64
        );
    }
}

#[test]
#[ignore = "prints only: the time to hash a 600×400 and a 24-megapixel image"]
fn hashing_cost() {
    for (w, h) in [(600u32, 400u32), (6000, 4000)] {
        let image = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (y * 3) as u8]));
        let runs = if w * h > 1_000_000 { 5 } else { 50 };
        let hash = perceptual_hash_rgb(&image);
        let started = Instant::now();
        for _ in 0..runs {
            assert_eq!(perceptual_hash_rgb(std::hint::black_box(&image)), hash);
        }
        eprintln!("{w}×{h}: {:.2?} per hash", started.elapsed() / runs);
    }
}

/// A candidate hash: its halves (64-bit words each), and how they are compared.
fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect()
}

fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn preshrink(image: &RgbImage) -> GrayImage {
    let gray = imageops::grayscale(image);
    let (w, h) = gray.dimensions();
    if w > 128 || h > 128 { imageops::thumbnail(&gray, w.min(128), h.min(128)) } else { gray }
}

fn centre(gray: &GrayImage, margin: f64) -> GrayImage {
    let (w, h) = gray.dimensions();
    let (dx, dy) = ((w as f64 * margin).round() as u32, (h as f64 * margin).round() as u32);
    imageops::crop_imm(gray, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
}

fn dct_median(side: u32) -> Hasher {
    HasherConfig::new()
        .hash_size(side, side)
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .resize_filter(FilterType::Lanczos3)
        .to_hasher()
}

/// Pre-shrunk DCT median hashes of the whole picture and of its centres with `margins` cut off
/// each side, one after the other (`len` words each).
fn whole_and_centres(hasher: &Hasher, image: &RgbImage, margins: &[f64]) -> Vec<u64> {
    let small = preshrink(image);
    let mut out = words(hasher.hash_image(&small).as_bytes());
    for &m in margins {
        out.extend(words(hasher.hash_image(&centre(&small, m)).as_bytes()));
    }
    out
}

/// The smallest distance between a's and b's parts (`len` words each) over the pairings that
/// involve a whole picture (part 0), or over all pairings.
fn nearest_pairing(a: &[u64], b: &[u64], len: usize, all_pairs: bool) -> u32 {
    let parts = a.len() / len;
    let mut best = u32::MAX;
    for i in 0..parts {
        for j in 0..parts {
            if all_pairs || i == 0 || j == 0 {
                best = best.min(hamming(&a[i * len..(i + 1) * len], &b[j * len..(j + 1) * len]));
            }
        }
    }
    best
}

#[test]
#[ignore = "slow: hashes the corpus with every candidate algorithm; run with --include-ignored --nocapture"]
fn compare_hash_algorithms() {
    let corpus = corpus();
    let mut results: Vec<(String, u32, Measurement)> = Vec::new();
    let mut record = |name: &str, bits: u32, started: Instant, m: Measurement| {
        m.print(name, bits);
        eprintln!("{:<34} hashed in {:.1?}", "", started.elapsed());
        results.push((name.to_owned(), bits, m));
    };

    // image_hasher's own algorithms, 64 bits, no pre-shrink.
    for (name, config) in [
        ("dct mean 8x8 (pHash)", HasherConfig::new().hash_alg(HashAlg::Mean).preproc_dct()),
        ("dct median 8x8 (pHash)", HasherConfig::new().hash_alg(HashAlg::Median).preproc_dct()),
        ("mean 8x8 (aHash)", HasherConfig::new().hash_alg(HashAlg::Mean)),
        ("gradient 8x8 (dHash)", HasherConfig::new().hash_alg(HashAlg::Gradient)),
        ("double gradient 10x10 60b", HasherConfig::new().hash_alg(HashAlg::DoubleGradient).hash_size(10, 10)),
        ("blockhash 8x8", HasherConfig::new().hash_alg(HashAlg::Blockhash)),
    ] {
        let hasher = config.to_hasher();
        let started = Instant::now();
        let hashes = hash_all(corpus, &|image| words(hasher.hash_image(image).as_bytes()));
        record(name, 64, started, measure(&hashes, &|a: &Vec<u64>, b: &Vec<u64>| hamming(a, b), 64));
    }

    // Pre-shrunk DCT median hashes: the whole picture alone, or with centre hashes.
    let schemes: [(&str, u32, &[f64], bool); 9] = [
        ("8x8 whole (the 64-bit pHash)", 8, &[], false),
        ("8x8 whole+centre 95%", 8, &[0.025], false),
        ("8x8 whole+centre 90%", 8, &[0.05], false),
        ("8x8 whole+centres 95%,90% all", 8, &[0.025, 0.05], true),
        ("12x12 whole", 12, &[], false),
        ("12x12 whole+centre 95%", 12, &[0.025], false),
        ("12x12 whole+centre 90%", 12, &[0.05], false),
        ("16x16 whole", 16, &[], false),
        ("16x16 whole+centre 95%", 16, &[0.025], false),
    ];
    for (name, side, margins, all_pairs) in schemes {
        let hasher = dct_median(side);
        let len = ((side * side) as usize).div_ceil(64);
        let started = Instant::now();
        let hashes = hash_all(corpus, &|image| whole_and_centres(&hasher, image, margins));
        let dist = |a: &Vec<u64>, b: &Vec<u64>| nearest_pairing(a, b, len, all_pairs);
        record(name, side * side, started, measure(&hashes, &dist, side * side));
    }

    let started = Instant::now();
    let hashes = hash_all(corpus, &perceptual_hash_rgb);
    record(
        "phash::perceptual_hash",
        2 * MAX_DISTANCE_LIMIT,
        started,
        measure(&hashes, &phash_distance, 2 * MAX_DISTANCE_LIMIT),
    );

    eprintln!("\nprecision / recall by distance, as a fraction of the bits");
    eprint!("{:<34}", "");
    let fractions = [0.0625, 0.09375, 0.125, 0.15625, 0.1875, 0.21875, 0.25, 0.28125];
    for f in fractions {
        eprint!(" {:>11}", format!("{:.1}%", 100.0 * f));
    }
    eprintln!();
    for (name, bits, m) in &results {
        eprint!("{name:<34}");
        for f in fractions {
            let (p, r, _) = m.precision_recall((f * f64::from(*bits)).round() as u32);
            eprint!(" {p:>5.3}/{r:>5.3}");
        }
        eprintln!();
    }
    let best = results
        .iter()
        .rev()
        .max_by(|a, b| (a.2.gap() as f64 / f64::from(a.1)).total_cmp(&(b.2.gap() as f64 / f64::from(b.1))));
    let best = best.unwrap();
    eprintln!("widest gap for its length: {} ({} of {} bits)", best.0, best.2.gap(), best.1);
}
