//! The many-row bf16 products on Intel AMX (`tdpbf16ps`): bf16 pair-word blocks against the
//! activations rounded to bf16, f32 sums — what PyTorch's bf16 runs on such CPUs.
//!
//! A tile register holds 16 rows of 64 bytes: 16 rows × 16 pair words of the activations
//! (`[m, ⌈k/2⌉]`, 32 inputs per row), or 16 pair rows × 16 outputs of a packed block (the
//! `[⌈k/2⌉, BLOCK]` layout is already the one `tdpbf16ps` reads), or 16 × 16 f32 sums. One
//! pass keeps a 32-row × 32-output patch of sums in four tiles and, per 32 inputs, loads two
//! tiles of activations and two of weights for four `tdpbf16ps` (16 × 16 × 32 products each).
//!
//! Rust 1.95 has no stable AMX intrinsics, so the instructions are written as inline assembly;
//! Linux hands a process the tile registers only after `arch_prctl(ARCH_REQ_XCOMP_PERM)`,
//! asked once ([`available`]). Inputs must be a multiple of 32 (every Qwen2-VL dense layer is);
//! other sizes take the `vdpbf16ps` path.

use std::arch::asm;
use std::sync::OnceLock;

use super::packed::BLOCK;

/// Rows of activations per pass (two tiles).
const ROWS: usize = 32;
/// Pair words per tile row (64 bytes).
const PAIRS: usize = 16;

/// Whether this CPU has AMX-TILE and AMX-BF16, Linux gave this process the tile data, and the
/// kernels are on.
pub fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    super::enabled()
        && *HAS.get_or_init(|| {
            // CPUID.(EAX=7, ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE (leaf 0 reports
            // the highest leaf; checked first).
            if std::arch::x86_64::__cpuid(0).eax < 7 {
                return false;
            }
            let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
            let cpu = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
            cpu && request_tile_data()
        })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: permission for every thread of the
/// process to use the tile registers (Linux 5.16+); false where the kernel refuses.
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it changes only whether this
    // process may use the AMX state.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

/// Whether a product over `k` inputs fits the tiles (whole 64-byte rows).
pub fn fits(k: usize) -> bool {
    k.is_multiple_of(2 * PAIRS)
}

/// The activations' rows padded up to a whole pass (the padding rows are zero).
pub fn padded_rows(m: usize) -> usize {
    m.div_ceil(ROWS) * ROWS
}

/// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn all_full() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row of tile t (u16)
            c[48 + t] = 16; // rows of tile t
        }
        Self(c)
    }
}

/// `out [m_pad, BLOCK]` = the sums of one block: `xp` is `[m_pad, pairs]` pair words (`m_pad`
/// from [`padded_rows`]), `block` is `[pairs, BLOCK]` pair words; `pairs` a multiple of 16.
pub fn block_product(xp: &[u32], m_pad: usize, pairs: usize, block: &[u32], out: &mut [f32]) {
    assert!(m_pad.is_multiple_of(ROWS) && pairs.is_multiple_of(PAIRS), "AMX tiles need whole passes ({m_pad} rows, {pairs} pairs)");
    assert!(xp.len() >= m_pad * pairs && block.len() >= pairs * BLOCK && out.len() >= m_pad * BLOCK);
    assert!(available(), "AMX is not available");
    let config = TileConfig::all_full();
    let (x_stride, w_stride, out_stride) = (pairs * 4, BLOCK * 4, BLOCK * 4);
    let (x, w, o) = (xp.as_ptr(), block.as_ptr(), out.as_mut_ptr());
    // SAFETY: `available()` saw AMX-TILE/AMX-BF16 and the kernel's permission. Every tile load
    // reads 16 rows of 64 bytes at the given stride: activations rows r0..r0 + 32 ≤ m_pad,
    // words p0..p0 + 16 ≤ pairs; weights pair rows p0..p0 + 16 ≤ pairs, words c0..c0 + 32 ≤
    // BLOCK; every store writes rows r0..r0 + 32 ≤ m_pad, columns c0..c0 + 32 ≤ BLOCK of
    // `out` — all inside the lengths asserted above. The tile registers are used only here,
    // configured first and released last, on this thread.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
        for r0 in (0..m_pad).step_by(ROWS) {
            for c0 in (0..BLOCK).step_by(2 * PAIRS) {
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
                for p0 in (0..pairs).step_by(PAIRS) {
                    asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm5, [{a1} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tileloadd tmm7, [{b1} + {sb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) x.add(r0 * pairs + p0),
                        a1 = in(reg) x.add((r0 + 16) * pairs + p0),
                        b0 = in(reg) w.add(p0 * BLOCK + c0),
                        b1 = in(reg) w.add(p0 * BLOCK + c0 + PAIRS),
                        sa = in(reg) x_stride,
                        sb = in(reg) w_stride,
                        options(nostack, readonly),
                    );
                }
                let top = o.add(r0 * BLOCK + c0);
                let bottom = o.add((r0 + 16) * BLOCK + c0);
                asm!(
                    "tilestored [{o00} + {so}*1], tmm0",
                    "tilestored [{o01} + {so}*1], tmm1",
                    "tilestored [{o10} + {so}*1], tmm2",
                    "tilestored [{o11} + {so}*1], tmm3",
                    o00 = in(reg) top,
                    o01 = in(reg) top.add(PAIRS),
                    o10 = in(reg) bottom,
                    o11 = in(reg) bottom.add(PAIRS),
                    so = in(reg) out_stride,
                    options(nostack),
                );
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}
