//! Perceptual hashes, for finding the same painting submitted twice.
//!
//! A re-saved, resized, slightly cropped or colour-corrected copy of a painting has different
//! bytes (so its SHA-256 differs) but nearly the same *picture*. [`perceptual_hash`] reduces the
//! picture to 64 bits that change little under such edits; two hashes a small Hamming
//! [`distance`](PerceptualHash::distance) apart are near-duplicates, and [`clusters`] groups a set
//! of submissions into the sets of copies of one work.
//!
//! The hash is `image_hasher`'s DCT pHash with a median threshold (the classic pHash of
//! pHash.org / Krawetz): grayscale, area-average down to at most 128×128, Lanczos3 resize to
//! 16×16, 2-D DCT-II, keep the 8×8 lowest-frequency coefficients, one bit per coefficient: is it
//! at least their median? (So a hash has 32 ones unless coefficients tie, and distances are
//! even.) It was chosen by measurement on the 174 sample paintings against mean-threshold DCT
//! pHash, mean (aHash), gradient (dHash), double gradient, Blockhash and a hand-written 32×32 DCT
//! pHash: it has the widest gap between the farthest transformed copy of a painting and the
//! nearest distinct painting (see `tests/near_duplicates.rs` and `docs/PIPELINE.md`).
//!
//! Hash the decoded, EXIF-oriented image ([`crate::decode`]'s output): an upright and a sideways
//! copy of the same photo hash differently.

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
/// cropped 2.5 % off each side, colour-shifted, and all four at once): re-encoded, resized and
/// colour-shifted copies are at most 4 bits from their original and cropped ones at most 14 (mean
/// 6), while the nearest images of two distinct paintings are 14 bits apart. At 12 no distinct
/// paintings match (precision 1.0) and 99.5 % of copies do: all but the crops of two paintings.
pub const DEFAULT_MAX_DISTANCE: u32 = 12;

/// A 64-bit perceptual hash of a picture.
///
/// Written (by `Display`, `FromStr` and serde) as 16 lowercase hex digits; stored in a Postgres
/// `bigint` through [`to_i64`](Self::to_i64) / [`from_i64`](Self::from_i64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PerceptualHash(pub u64);

impl PerceptualHash {
    /// The number of bits in which the two hashes differ (0–64): small for copies of one picture.
    #[inline]
    pub fn distance(self, other: PerceptualHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }

    /// The same 64 bits as a signed integer, for a Postgres `bigint` column.
    #[inline]
    pub fn to_i64(self) -> i64 {
        self.0 as i64
    }

    /// The hash whose bits are those of `value` (the inverse of [`to_i64`](Self::to_i64)).
    #[inline]
    pub fn from_i64(value: i64) -> Self {
        Self(value as u64)
    }
}

impl fmt::Display for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PerceptualHash({self})")
    }
}

/// A string that is not 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a perceptual hash is 16 hex digits, not {0:?}")]
pub struct ParsePerceptualHashError(String);

impl FromStr for PerceptualHash {
    type Err = ParsePerceptualHashError;

    /// Parses 16 hex digits (either case; `u64::from_str_radix` alone would also take a sign).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParsePerceptualHashError(s.chars().take(40).collect()));
        }
        u64::from_str_radix(s, 16).map(Self).map_err(|_| ParsePerceptualHashError(s.to_owned()))
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

/// The hasher: built once (it plans the 16×16 DCT), shared by all threads.
static HASHER: LazyLock<Hasher> = LazyLock::new(|| {
    HasherConfig::new()
        .hash_size(8, 8)
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .resize_filter(FilterType::Lanczos3)
        .to_hasher()
});

/// Images are first averaged down to at most this many pixels a side (each source pixel counted
/// once: fast, and no aliasing), so the Lanczos3 resize to 16×16 costs the same for a 40-megapixel
/// scan as for a thumbnail.
const PRESHRINK_SIDE: u32 = 128;

fn hash_gray(gray: &GrayImage) -> PerceptualHash {
    let (w, h) = gray.dimensions();
    let hash = if w > PRESHRINK_SIDE || h > PRESHRINK_SIDE {
        HASHER.hash_image(&imageops::thumbnail(gray, w.min(PRESHRINK_SIDE), h.min(PRESHRINK_SIDE)))
    } else {
        HASHER.hash_image(gray)
    };
    let bytes: [u8; 8] = hash.as_bytes().try_into().expect("an 8×8 hash is 8 bytes");
    PerceptualHash(u64::from_le_bytes(bytes))
}

/// The 64-bit perceptual hash of `image` (see the module documentation for the algorithm).
///
/// Costs a grayscale conversion and one averaging pass over it: about 4 ms for a 600×400 image
/// and 0.3 s for 24 megapixels in the (optimised) dev profile.
pub fn perceptual_hash(image: &DynamicImage) -> PerceptualHash {
    match image.as_luma8() {
        Some(gray) => hash_gray(gray),
        None => hash_gray(&image.to_luma8()),
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
/// `items`; members keep input order. Compares all pairs: O(n²) XOR-and-popcounts, 450 million
/// for 30 000 items.
pub fn clusters<K: Clone>(items: &[(K, PerceptualHash)], max_distance: u32) -> Vec<Cluster<K>> {
    let n = items.len();
    let hashes: Vec<u64> = items.iter().map(|(_, h)| h.0).collect();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut close: Vec<(usize, usize, u32)> = Vec::new();

    for (i, &a) in hashes.iter().enumerate() {
        for (offset, &b) in hashes[i + 1..].iter().enumerate() {
            let d = (a ^ b).count_ones();
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

    fn h(bits: u64) -> PerceptualHash {
        PerceptualHash(bits)
    }

    #[test]
    fn distance_is_the_number_of_differing_bits() {
        assert_eq!(h(0).distance(h(0)), 0);
        assert_eq!(h(0).distance(h(u64::MAX)), 64);
        assert_eq!(h(0b1011).distance(h(0b0001)), 2);
        assert_eq!(h(1 << 63).distance(h(1)), 2);
        assert_eq!(h(0xdead_beef).distance(h(0xfeed_face)), h(0xfeed_face).distance(h(0xdead_beef)));
    }

    #[test]
    fn hex_round_trips() {
        for bits in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX, 1 << 63] {
            let text = h(bits).to_string();
            assert_eq!(text.len(), 16);
            assert_eq!(text, text.to_lowercase());
            assert_eq!(text.parse::<PerceptualHash>().unwrap(), h(bits));
        }
        assert_eq!(h(0xab).to_string(), "00000000000000ab");
        assert_eq!("00000000000000AB".parse::<PerceptualHash>().unwrap(), h(0xab));
        for bad in ["", "ab", "+0000000000000ab", "00000000000000abc", "000000000000000g", " 00000000000000a"] {
            assert!(bad.parse::<PerceptualHash>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_writes_hex() {
        let json = serde_json::to_string(&h(0x0123_4567_89ab_cdef)).unwrap();
        assert_eq!(json, "\"0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<PerceptualHash>(&json).unwrap(), h(0x0123_4567_89ab_cdef));
        assert!(serde_json::from_str::<PerceptualHash>("\"xyz\"").is_err());
        assert!(serde_json::from_str::<PerceptualHash>("12").is_err());
    }

    #[test]
    fn i64_round_trips_bit_for_bit() {
        for bits in [0, 1, i64::MAX as u64, 1 << 63, u64::MAX, 0x8000_0000_0000_0001] {
            let stored = h(bits).to_i64();
            assert_eq!(stored.to_ne_bytes(), bits.to_ne_bytes());
            assert_eq!(PerceptualHash::from_i64(stored), h(bits));
        }
        assert_eq!(h(u64::MAX).to_i64(), -1);
        assert_eq!(h(1 << 63).to_i64(), i64::MIN);
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
    fn a_picture_hashes_like_its_copy() {
        let rgb = RgbImage::from_fn(200, 150, |x, y| image::Rgb([(x + y) as u8, (x * 3) as u8, (y * 2) as u8]));
        let dynamic = DynamicImage::ImageRgb8(rgb.clone());
        assert_eq!(perceptual_hash(&dynamic), perceptual_hash_rgb(&rgb));
        let small = image::imageops::resize(&rgb, 100, 75, image::imageops::FilterType::Lanczos3);
        assert!(perceptual_hash_rgb(&small).distance(perceptual_hash_rgb(&rgb)) <= DEFAULT_MAX_DISTANCE);
        let flat = RgbImage::from_pixel(64, 64, image::Rgb([40, 40, 40]));
        assert!(perceptual_hash_rgb(&flat).distance(perceptual_hash_rgb(&rgb)) > DEFAULT_MAX_DISTANCE);
    }
}
