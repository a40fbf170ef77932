//! Perceptual hashes, for finding the same painting submitted twice.
//!
//! A re-saved, resized, slightly cropped or colour-corrected copy of a painting has different
//! bytes (so its SHA-256 differs) but nearly the same *picture*. [`perceptual_hash`] reduces the
//! picture to a few hundred bits that change little under such edits; two hashes a small
//! [`distance`](PerceptualHash::distance) apart are near-duplicates, and [`clusters`] groups a set
//! of submissions into the sets of copies of one work.
//!
//! A [`PerceptualHash`] holds two 144-bit DCT pHashes of the picture: one of the whole picture and
//! one of its centre, the picture with 2.5 % cut off each side. Each is `image_hasher`'s DCT pHash
//! with a median threshold, on a 12×12 block of frequencies instead of the classic 8×8: grayscale,
//! area-average down to at most 128×128, Lanczos3 resize to 24×24, 2-D DCT-II, keep the 12×12
//! lowest-frequency coefficients, one bit per coefficient: is it at least their median? (So each
//! half has 72 ones unless coefficients tie, and distances are even.) The distance of two hashes
//! is the smallest Hamming distance of whole↔whole, whole↔centre and centre↔whole: a copy cropped
//! by about 5 % *is* the original's centre, so its whole-picture hash meets the original's centre
//! hash, and the other way round.
//!
//! Chosen by measurement on the 174 sample paintings (see `tests/near_duplicates.rs`): a single
//! 64-bit pHash moves as far under a 5 % crop as the nearest two distinct paintings are apart; the
//! 144-bit whole + centre pair puts every copy (JPEG, resize, crop, colour shift, all four) at most
//! 8 bits from its original and distinct paintings at least 44 apart.
//!
//! Hash the decoded, EXIF-oriented image ([`crate::decode`]'s output): an upright and a sideways
//! copy of the same photo hash differently.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use image::{DynamicImage, GrayImage, RgbImage, imageops};
use image_hasher::{FilterType, HashAlg, Hasher, HasherConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default largest [`distance`](PerceptualHash::distance) at which two hashes are taken for
/// copies of the same painting.
///
/// Measured on the 174 sample paintings, each copied five ways (JPEG quality 60, resized to 50 %,
/// cropped 2.5 % off each side, colour-shifted, and all four at once): every copy is at most 8
/// from its original, while the nearest images of two distinct paintings are 44 apart. 24 leaves
/// 16 of margin above the copies and 20 below distinct paintings (precision and recall 1.0), and
/// also catches most crops of 1–4 % a side.
pub const DEFAULT_MAX_DISTANCE: u32 = 24;

/// The largest `max_distance` worth asking for: half of one 144-bit hash. Two unrelated pictures
/// are about this far apart, so a larger distance matches nearly everything.
pub const MAX_DISTANCE_LIMIT: u32 = (HALF_BITS / 2) as u32;

/// The side of the block of low DCT frequencies: each half-hash has `SIDE × SIDE` bits.
const SIDE: u32 = 12;
/// Bits in each of the two halves (whole picture, centre).
const HALF_BITS: usize = (SIDE * SIDE) as usize;
/// Bytes in each half.
const HALF_BYTES: usize = HALF_BITS / 8;
/// 64-bit words in each half (the last one holds 16 bits, the rest are zero).
const HALF_WORDS: usize = HALF_BITS.div_ceil(64);
/// The fraction of each side cut off for the centre hash: 2.5 %, so the centre is 95 % × 95 %.
const CENTRE_MARGIN: f64 = 0.025;

/// A perceptual hash of a picture: a 144-bit DCT pHash of the whole picture and one of its
/// centre (95 % × 95 %).
///
/// Written (by `Display`, `FromStr` and serde) as 72 lowercase hex digits, the 36 bytes of
/// [`to_bytes`](Self::to_bytes) in order; stored in a Postgres `bytea` as those bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PerceptualHash {
    /// The whole picture's hash, little-endian: bit `i` of the hash is bit `i % 64` of word
    /// `i / 64` (the bytes of `image_hasher`'s hash in order).
    whole: [u64; HALF_WORDS],
    /// The centre's hash, likewise.
    centre: [u64; HALF_WORDS],
}

fn hamming(a: &[u64; HALF_WORDS], b: &[u64; HALF_WORDS]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn half_from_bytes(bytes: &[u8]) -> [u64; HALF_WORDS] {
    let mut words = [0u64; HALF_WORDS];
    for (i, &b) in bytes.iter().enumerate() {
        words[i / 8] |= u64::from(b) << (8 * (i % 8));
    }
    words
}

fn half_to_bytes(words: &[u64; HALF_WORDS], out: &mut Vec<u8>) {
    out.extend(words.iter().flat_map(|w| w.to_le_bytes()).take(HALF_BYTES));
}

impl PerceptualHash {
    /// The length of [`to_bytes`](Self::to_bytes): 18 bytes of the whole picture's hash, then 18
    /// of the centre's.
    pub const BYTES: usize = 2 * HALF_BYTES;

    /// How different the two pictures are (0–144; unrelated pictures are about 72 apart, copies
    /// of one picture a few): the smallest number of differing bits between the whole pictures,
    /// this whole picture and the other's centre, or this centre and the other's whole picture.
    #[inline]
    pub fn distance(self, other: PerceptualHash) -> u32 {
        hamming(&self.whole, &other.whole)
            .min(hamming(&self.whole, &other.centre))
            .min(hamming(&self.centre, &other.whole))
    }

    /// The storage form (a Postgres `bytea`): [`BYTES`](Self::BYTES) = 36 bytes, the whole
    /// picture's 144 bits then the centre's, each little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        half_to_bytes(&self.whole, &mut out);
        half_to_bytes(&self.centre, &mut out);
        out
    }

    /// The hash whose [`to_bytes`](Self::to_bytes) are `bytes`; `None` unless there are exactly
    /// [`BYTES`](Self::BYTES) of them.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::BYTES {
            return None;
        }
        let (whole, centre) = bytes.split_at(HALF_BYTES);
        Some(Self { whole: half_from_bytes(whole), centre: half_from_bytes(centre) })
    }
}

impl fmt::Display for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PerceptualHash({self})")
    }
}

/// A string that is not 72 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a perceptual hash is 72 hex digits, not {0:?}")]
pub struct ParsePerceptualHashError(String);

impl FromStr for PerceptualHash {
    type Err = ParsePerceptualHashError;

    /// Parses 72 hex digits (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ParsePerceptualHashError(s.chars().take(80).collect());
        if s.len() != 2 * Self::BYTES || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error());
        }
        let bytes: Vec<u8> = s
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let digit = |c: u8| (c as char).to_digit(16).expect("checked hex") as u8;
                digit(pair[0]) << 4 | digit(pair[1])
            })
            .collect();
        Self::from_bytes(&bytes).ok_or_else(error)
    }
}

impl Serialize for PerceptualHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PerceptualHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The hasher: built once (it plans the 24×24 DCT), shared by all threads.
static HASHER: LazyLock<Hasher> = LazyLock::new(|| {
    HasherConfig::new()
        .hash_size(SIDE, SIDE)
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .resize_filter(FilterType::Lanczos3)
        .to_hasher()
});

/// Images are first averaged down to at most this many pixels a side (each source pixel counted
/// once: fast, and no aliasing), so the Lanczos3 resizes to 24×24 cost the same for a
/// 40-megapixel scan as for a thumbnail.
const PRESHRINK_SIDE: u32 = 128;

fn half_hash(gray: &GrayImage) -> [u64; HALF_WORDS] {
    let hash = HASHER.hash_image(gray);
    let bytes = hash.as_bytes();
    assert_eq!(bytes.len(), HALF_BYTES, "a 12×12 hash is 18 bytes");
    half_from_bytes(bytes)
}

fn hash_gray(gray: &GrayImage) -> PerceptualHash {
    let (w, h) = gray.dimensions();
    let small = if w > PRESHRINK_SIDE || h > PRESHRINK_SIDE {
        Cow::Owned(imageops::thumbnail(gray, w.min(PRESHRINK_SIDE), h.min(PRESHRINK_SIDE)))
    } else {
        Cow::Borrowed(gray)
    };
    let (w, h) = small.dimensions();
    let (dx, dy) = ((f64::from(w) * CENTRE_MARGIN).round() as u32, (f64::from(h) * CENTRE_MARGIN).round() as u32);
    let centre = imageops::crop_imm(&*small, dx, dy, w - 2 * dx, h - 2 * dy).to_image();
    PerceptualHash { whole: half_hash(&small), centre: half_hash(&centre) }
}

/// The perceptual hash of `image` (see the module documentation for the algorithm).
///
/// Costs a grayscale conversion and one averaging pass over it, then two small DCTs: about
/// TODO_SMALL ms for a 600×400 image and TODO_BIG s for 24 megapixels in the (optimised) dev profile.
pub fn perceptual_hash(image: &DynamicImage) -> PerceptualHash {
    // `imageops::grayscale` throughout (not `DynamicImage::to_luma8`, which rounds differently):
    // the same picture hashes the same whichever way it is held.
    match image {
        DynamicImage::ImageLuma8(gray) => hash_gray(gray),
        DynamicImage::ImageRgb8(rgb) => perceptual_hash_rgb(rgb),
        other => hash_gray(&imageops::grayscale(other)),
    }
}

/// [`perceptual_hash`] of an RGB image (such as [`crate::DecodedImage::rgb`]), without copying it
/// into a [`DynamicImage`]; the same hash.
pub fn perceptual_hash_rgb(image: &RgbImage) -> PerceptualHash {
    hash_gray(&imageops::grayscale(image))
}

/// A group of items whose hashes are linked by chains of near-duplicate pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster<K> {
    /// The items, in input order.
    pub members: Vec<K>,
    /// Every pair `(i, j, distance)` of members (indices into `members`, `i < j`) whose hashes are
    /// within the distance asked for: the evidence for the cluster. A chain A–B–C puts A and C in
    /// one cluster without listing the pair A–C when it is farther apart.
    pub pairs: Vec<(usize, usize, u32)>,
}

/// Groups `items` into clusters of near-duplicates: two items are linked when their hashes are at
/// most `max_distance` apart, and clusters are the connected groups (so linking is transitive).
///
/// Only clusters of two or more items are returned, ordered by their first member's position in
/// `items`; members keep input order. Compares all pairs: O(n²) [`distance`](PerceptualHash::distance)s
/// (nine XOR-and-popcounts each), 450 million for 30 000 items.
pub fn clusters<K: Clone>(items: &[(K, PerceptualHash)], max_distance: u32) -> Vec<Cluster<K>> {
    let n = items.len();
    let hashes: Vec<PerceptualHash> = items.iter().map(|(_, h)| *h).collect();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut close: Vec<(usize, usize, u32)> = Vec::new();

    for (i, &a) in hashes.iter().enumerate() {
        for (offset, &b) in hashes[i + 1..].iter().enumerate() {
            let d = a.distance(b);
            if d <= max_distance {
                let j = i + 1 + offset;
                close.push((i, j, d));
                union(&mut parent, i, j);
            }
        }
    }
    if close.is_empty() {
        return Vec::new();
    }

    // Flatten, then give each root with two or more items a cluster, numbered in order of the
    // first item seen (roots are always their set's smallest index, see `union`).
    let roots: Vec<usize> = (0..n).map(|i| find(&mut parent, i)).collect();
    let mut size = vec![0usize; n];
    for &r in &roots {
        size[r] += 1;
    }
    let mut cluster_of_root = vec![usize::MAX; n];
    let mut position = vec![0usize; n];
    let mut out: Vec<Cluster<K>> = Vec::new();
    for (i, &r) in roots.iter().enumerate() {
        if size[r] < 2 {
            continue;
        }
        if cluster_of_root[r] == usize::MAX {
            cluster_of_root[r] = out.len();
            out.push(Cluster { members: Vec::with_capacity(size[r]), pairs: Vec::new() });
        }
        let cluster = &mut out[cluster_of_root[r]];
        position[i] = cluster.members.len();
        cluster.members.push(items[i].0.clone());
    }
    for (i, j, d) in close {
        out[cluster_of_root[roots[i]]].pairs.push((position[i], position[j], d));
    }
    out
}

/// The root of `i`'s set, halving the path on the way.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Joins the sets of `a` and `b` under the smaller root, so a root is its set's first index.
fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (keep, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[child] = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash whose whole-picture and centre halves are `whole` and `centre` in their low 64 bits.
    fn h2(whole: u64, centre: u64) -> PerceptualHash {
        PerceptualHash { whole: [whole, 0, 0], centre: [centre, 0, 0] }
    }

    /// A hash whose two halves are both `bits`: its distances are plain Hamming distances.
    fn h(bits: u64) -> PerceptualHash {
        h2(bits, bits)
    }

    #[test]
    fn distance_is_the_nearest_of_whole_and_centre_pairings() {
        assert_eq!(h(0).distance(h(0)), 0);
        assert_eq!(h(0).distance(h(u64::MAX)), 64);
        assert_eq!(h(0b1011).distance(h(0b0001)), 2);
        assert_eq!(h(1 << 63).distance(h(1)), 2);
        assert_eq!(h(0xdead_beef).distance(h(0xfeed_face)), h(0xfeed_face).distance(h(0xdead_beef)));
        // All 144 bits of each half count.
        let all = PerceptualHash { whole: [u64::MAX, u64::MAX, 0xffff], centre: [u64::MAX, u64::MAX, 0xffff] };
        assert_eq!(h(0).distance(all), 144);
        // whole↔whole 4, whole↔centre 1, centre↔whole 3: the nearest wins, either way round.
        let (a, b) = (h2(0b0000, 0b0111), h2(0b1111, 0b0001));
        assert_eq!(a.distance(b), 1);
        assert_eq!(b.distance(a), 1);
        // centre↔centre alone does not count: two pictures with the same middle but different
        // edges are not copies.
        let stripes = 0x5555_5555_5555_5555;
        assert_eq!(h2(0, stripes).distance(h2(u64::MAX, stripes)), 32);
    }

    #[test]
    fn bytes_round_trip_and_have_one_length() {
        let bytes: Vec<u8> = (0..36u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let hash = PerceptualHash::from_bytes(&bytes).unwrap();
        assert_eq!(hash.to_bytes(), bytes);
        assert_eq!(PerceptualHash::from_bytes(&hash.to_bytes()), Some(hash));
        assert_eq!(h2(0x0102, 0xff).to_bytes()[..3], [0x02, 0x01, 0x00]);
        assert_eq!(h2(0x0102, 0xff).to_bytes()[18..20], [0xff, 0x00]);
        assert_eq!(h(0).to_bytes(), vec![0; PerceptualHash::BYTES]);
        for len in [0, 8, 18, 35, 37, 72] {
            assert_eq!(PerceptualHash::from_bytes(&vec![0; len]), None, "{len} bytes");
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..36u8).map(|i| i.wrapping_mul(91)).collect();
        let full = PerceptualHash::from_bytes(&bytes).unwrap();
        for hash in [h(0), h(1), h2(0x0123_4567_89ab_cdef, u64::MAX), full] {
            let text = hash.to_string();
            assert_eq!(text.len(), 72);
            assert_eq!(text, text.to_lowercase());
            assert_eq!(text.parse::<PerceptualHash>().unwrap(), hash);
            assert_eq!(text.to_uppercase().parse::<PerceptualHash>().unwrap(), hash);
        }
        assert_eq!(h2(0xab, 0).to_string(), format!("ab{}", "0".repeat(70)));
        assert_eq!(format!("{:?}", h(0)), format!("PerceptualHash({})", "0".repeat(72)));
        let good = "0".repeat(72);
        for bad in [
            String::new(),
            "ab".into(),
            "0".repeat(16),
            "0".repeat(71),
            "0".repeat(73),
            format!("+{}", &good[1..]),
            format!("{}g", &good[1..]),
            format!(" {}", &good[1..]),
        ] {
            assert!(bad.parse::<PerceptualHash>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_writes_hex() {
        let hash = h2(0x0123_4567_89ab_cdef, 0xfe);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"efcdab8967452301{}fe{}\"", "0".repeat(20), "0".repeat(34)));
        assert_eq!(serde_json::from_str::<PerceptualHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<PerceptualHash>("\"xyz\"").is_err());
        assert!(serde_json::from_str::<PerceptualHash>("\"0123456789abcdef\"").is_err());
        assert!(serde_json::from_str::<PerceptualHash>("12").is_err());
    }

    #[test]
    fn clusters_follow_chains_and_drop_singletons() {
        // a–b 2 bits, b–c 2 bits (a–c 4 bits), d alone, e–f 1 bit; max distance 2.
        let items = vec![
            ("a", h(0b0000)),
            ("d", h(0xffff_0000_0000_0000)),
            ("e", h(0x00ff_0000_0000_0000)),
            ("b", h(0b0011)),
            ("c", h(0b1111)),
            ("f", h(0x01ff_0000_0000_0000)),
        ];
        let found = clusters(&items, 2);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].members, vec!["a", "b", "c"]);
        assert_eq!(found[0].pairs, vec![(0, 1, 2), (1, 2, 2)]);
        assert_eq!(found[1].members, vec!["e", "f"]);
        assert_eq!(found[1].pairs, vec![(0, 1, 1)]);

        // At 4 bits a–c is listed too; at 0 nothing clusters.
        let wider = clusters(&items, 4);
        assert_eq!(wider[0].pairs, vec![(0, 1, 2), (0, 2, 4), (1, 2, 2)]);
        assert!(clusters(&items, 0).is_empty());
        assert!(clusters::<u32>(&[], 10).is_empty());
    }

    #[test]
    fn clusters_join_chains_found_out_of_order() {
        // 0–3 and 1–2 link first, then 2–3 joins the two sets.
        let items: Vec<(usize, PerceptualHash)> =
            vec![(0, h(0b0000_0001)), (1, h(0b1110_0000)), (2, h(0b1100_0000)), (3, h(0b0000_0000))];
        let found = clusters(&items, 2);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].members, vec![0, 1, 2, 3]);
        assert!(found[0].pairs.contains(&(2, 3, 2)));
        // Identical hashes are distance 0 and cluster at 0.
        let same = clusters(&[("x", h(7)), ("y", h(7))], 0);
        assert_eq!(same[0].pairs, vec![(0, 1, 0)]);
    }

    #[test]
    fn clusters_use_the_centre_pairings() {
        // Whole pictures 64 bits apart, but x's centre is y's whole picture (a cropped copy).
        let found = clusters(&[("x", h2(0, u64::MAX)), ("y", h2(u64::MAX, 0))], 0);
        assert_eq!(found[0].pairs, vec![(0, 1, 0)]);
    }

    #[test]
    fn a_picture_hashes_like_its_copies() {
        let rgb = RgbImage::from_fn(400, 300, |x, y| {
            let (fx, fy) = (x as f32 / 40.0, y as f32 / 30.0);
            let v = |a: f32| (127.0 + 120.0 * a.sin()) as u8;
            image::Rgb([v(fx + fy * 0.5), v(fx * 0.7 - fy), v(fx * fy * 0.3)])
        });
        let dynamic = DynamicImage::ImageRgb8(rgb.clone());
        let hash = perceptual_hash_rgb(&rgb);
        assert_eq!(perceptual_hash(&dynamic), hash);
        assert_eq!(perceptual_hash(&DynamicImage::ImageLuma8(imageops::grayscale(&rgb))), hash);
        assert_eq!(perceptual_hash(&DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(rgb.clone()).to_rgba8())), hash);
        let small = imageops::resize(&rgb, 200, 150, imageops::FilterType::Lanczos3);
        assert!(perceptual_hash_rgb(&small).distance(hash) <= DEFAULT_MAX_DISTANCE);
        let cropped = imageops::crop_imm(&rgb, 10, 8, 380, 284).to_image();
        assert!(perceptual_hash_rgb(&cropped).distance(hash) <= DEFAULT_MAX_DISTANCE);
        let other = RgbImage::from_fn(400, 300, |x, y| image::Rgb([(x * y / 300) as u8, (x / 2) as u8, (y / 2) as u8]));
        assert!(perceptual_hash_rgb(&other).distance(hash) > DEFAULT_MAX_DISTANCE);
        // Tiny images hash too (their centre is the whole picture).
        let tiny = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(x * 80) as u8, (y * 100) as u8, 0]));
        let t = perceptual_hash_rgb(&tiny);
        assert_eq!(t.distance(t), 0);
    }
}
