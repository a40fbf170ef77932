//! Easel's own CPU kernels, as candle custom ops, for the f32 inference path on the CPU.
//!
//! candle's CPU backend runs elementwise ops on one thread with a scalar `exp`, and hands every
//! matmul to `gemm`, whose few-row products run on one thread. These kernels cover the ops that
//! profiling showed to matter (docs/PERFORMANCE.md, "CPU against PyTorch"):
//!
//! - [`panels`]: the dense layers at inference (after `pack_weights`), with each weight
//!   stored in the panels gemm's micro-kernels read, so they read it in place under a loop of
//!   Easel's own, for every row count;
//! - [`linear`]: the same layers as loaded, with each weight stored transposed so gemm
//!   needs no scalar packing, the bias fused, one gemm per thread on its own band of outputs
//!   (each weight panel packed once), and the few-row products of decoding on every thread at
//!   the memory bandwidth the cores have;
//! - [`skinny`]: the same few-row products against a row-major weight (the output layer tied to
//!   the embeddings, which lookups need row-major);
//! - [`packed`]: dense layers with bf16 or 8-bit weights (opt-in), for decoding at a half or a
//!   quarter of the memory traffic;
//! - [`activation`]: QuickGELU, SiLU × up and the softmax, with a vectorised `exp`, on every
//!   thread;
//! - [`attention`]: the vision tower's attention from the fused `qkv` output to the heads'
//!   outputs in two parallel passes (split + rotary + scale, then softmax(Q Kᵀ) V per head and
//!   block of queries).
//!
//! Each is written once and compiled for AVX-512, AVX2 + FMA and plain x86-64 (or whatever the
//! target is); the widest the CPU has is chosen at run time, so one binary runs on any x86-64.
//! They run only where nothing needs gradients (f32 tensors that track no op): training keeps
//! candle's differentiable ops. `EASEL_CPU_KERNELS=0` turns them all off (to measure the
//! difference or rule them out).

pub mod activation;
#[cfg(target_arch = "x86_64")]
mod amx;
pub mod attention;
pub mod linear;
pub mod packed;
pub mod panels;
pub mod skinny;

use std::sync::OnceLock;

use rayon::prelude::*;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

pub use activation::{quick_gelu, silu_mul, softmax_last_dim};
pub use attention::vision_attention;
pub use linear::{inference_layout, linear, linear_applies};
pub use packed::{PackedLinear, WeightFormat};
pub use skinny::{SKINNY_ROWS, skinny_applies, skinny_matmul};

/// A weight buffer for the kernels. It starts on a 64-byte boundary, so every vector the
/// kernels load from it (64 bytes with AVX-512) lies in one cache line; from a plain `Vec`
/// (glibc: 16 bytes past a page) every such load spans two lines. From 2 MiB up it starts on
/// a huge-page boundary, and Linux is asked to back it with transparent huge pages: the
/// kernels sweep each weight in slices, a few hundred KiB of several panels at once, and
/// the 4 KiB pages' misses in the TLB made the language model's down projection run at
/// 0.55× on the Xeon (docs/PERFORMANCE.md, "Weights on a cache line and on huge pages").
pub(crate) type Aligned<T> = aligned_vec::AVec<T, aligned_vec::RuntimeAlign>;

/// Linux's transparent huge page on x86-64 (and the boundary [`Aligned`] buffers of that size
/// or more start on).
const HUGE_PAGE: usize = 2 << 20;

/// `len` zeros in an [`Aligned`] buffer.
pub(crate) fn aligned_zeros<T: Copy + Default>(len: usize) -> Aligned<T> {
    let bytes = len * std::mem::size_of::<T>();
    let huge = bytes >= HUGE_PAGE;
    let mut v = Aligned::<T>::with_capacity(if huge { HUGE_PAGE } else { 64 }, len);
    if huge {
        advise_huge_pages(v.as_mut_ptr().cast(), bytes / HUGE_PAGE * HUGE_PAGE);
    }
    // Written after the advice, so the pages are faulted in huge.
    v.resize(len, T::default());
    v
}

/// A buffer of `len` floats that `fill(i, chunk)` writes, one parallel task per chunk of `chunk`
/// elements (the last may be shorter); each task zeroes its chunk first, while it is in cache.
/// For outputs, instead of `vec![0.0; len]`: that is a calloc, and on memory glibc kept
/// ([`keep_freed_memory`]) calloc clears the whole block on the calling thread while every other
/// core waits — on the score path at batch 4, a layer's 46 MB of outputs.
pub(crate) fn par_filled(len: usize, chunk: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(i, part)| {
        part.fill(std::mem::MaybeUninit::new(0.0));
        // SAFETY: every element of `part` was just written, and `MaybeUninit<f32>` has the
        // layout of `f32`.
        fill(i, unsafe { &mut *(part as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) });
    });
    // SAFETY: the chunks cover 0..len, and every element was written.
    unsafe { v.set_len(len) };
    v
}

/// `rows` rows of `width` floats, each a copy of `row`, or zeros (see [`par_filled`]).
pub(crate) fn par_rows(rows: usize, width: usize, row: Option<&[f32]>) -> Vec<f32> {
    // About 64 KiB per task, whole rows.
    let per_task = (PAR_CHUNK / width.max(1)).max(1) * width.max(1);
    par_filled(rows * width, per_task, |_, part| {
        if let Some(row) = row {
            part.chunks_exact_mut(width).for_each(|dst| dst.copy_from_slice(row));
        }
    })
}

/// Elements per task in the parallel passes over a buffer (64 KiB of f32): large enough to
/// amortise scheduling, small enough to balance.
pub(crate) const PAR_CHUNK: usize = 1 << 14;

/// Makes glibc keep freed memory for reuse instead of handing it back to the kernel at once, for
/// a process that runs the model: every layer's outputs and scratch are allocated and freed
/// again on every call, and each page glibc had returned is faulted in and zeroed afresh the
/// next time. On a 2-core Xeon a batch-4 score-and-prefill run took 1.55 million such faults
/// after loading (6 GB), and about none with this; peak and steady memory stayed as they were
/// (docs/PERFORMANCE.md, "On a second Intel Xeon (family 6 model 207), and freed memory kept
/// for reuse"). Blocks of up to 32 MiB (glibc's ceiling) come from the heap, up to 2 GiB of
/// free heap is kept, and the heap grows 128 MiB at a time. Call it first thing in `main`;
/// after loading, [`release_freed_memory`] returns what loading left free. Where
/// `GLIBC_TUNABLES` is set, the user's own malloc settings stand and nothing changes;
/// elsewhere than glibc on Linux this is a no-op.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only sets the allocator's parameters, under glibc's own locks; a
        // value glibc refuses is ignored (it returns 0).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 128 << 20);
        }
    }
}

/// Hands the memory glibc holds free back to the kernel, once: after loading, where the
/// checkpoint's tensors and the weights' intermediate layouts were freed. Without it a process
/// that called [`keep_freed_memory`] would keep that garbage (3.4 GB for the 2B model) for
/// good. `pack_weights` calls it; elsewhere than glibc on Linux it is a no-op.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; no live block moves.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks Linux to back `bytes` (whole huge pages) from `start` (a huge-page boundary) with
/// huge pages, from the next write on. The range's pages are dropped first: under
/// [`keep_freed_memory`] a buffer usually lands on heap memory that glibc kept, already backed
/// by 4 KiB pages, and the advice alone applies only to pages faulted in after it (with the
/// pages kept, loading the 2B model took no huge page at all, against 3 529 without). Where
/// transparent huge pages are off, or on another OS, 4 KiB pages stay.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, bytes: usize) {
    // SAFETY: the range lies inside one live allocation of this process (the caller's buffer,
    // whose capacity is at least `bytes`) that holds nothing yet: the caller writes every
    // element after this. MADV_DONTNEED makes its next reads zeros and its next writes fault in
    // fresh pages; MADV_HUGEPAGE changes only how the kernel backs them. A refusal (EINVAL
    // where THP is compiled out) changes nothing.
    unsafe {
        libc::madvise(start.cast(), bytes, libc::MADV_DONTNEED);
        libc::madvise(start.cast(), bytes, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _bytes: usize) {}

/// Whether Easel's CPU kernels may run (not turned off with `EASEL_CPU_KERNELS=0`).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("EASEL_CPU_KERNELS").map(|v| v != "0").unwrap_or(true))
}

/// Whether a kernel may take `xs`: f32 on the CPU, enabled, and no gradient to carry.
pub fn applies(xs: &Tensor) -> bool {
    enabled() && xs.device().is_cpu() && xs.dtype() == DType::F32 && !xs.track_op()
}

/// The f32 values a contiguous CPU tensor holds, or an error naming `op`.
pub(crate) fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op} runs on f32");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} needs contiguous inputs");
    };
    Ok(&values[start..end])
}

/// An output buffer shared by parallel tasks that each write their own elements of it (their
/// rows, their columns): the attention's heads, the dense layers' bands of outputs.
#[derive(Clone, Copy)]
pub(crate) struct Out(*mut f32);
// SAFETY: every user hands each task a disjoint set of elements, and the buffer outlives the
// parallel loop.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    pub(crate) fn new(buffer: &mut [f32]) -> Self {
        Self(buffer.as_mut_ptr())
    }

    /// The element at `offset` (a method, so closures capture the whole `Out`, not its pointer).
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The vector unit kernels run on, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/BW/DQ/VL with AVX2 and FMA (x86-64-v4).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 with FMA (x86-64-v3).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Whatever the build targets (SSE2 on plain x86-64).
    Portable,
}

impl Isa {
    pub fn detect() -> Self {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                let v3 = has!("avx2") && has!("fma");
                if v3 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
                    return Isa::Avx512;
                }
                if v3 {
                    return Isa::Avx2;
                }
            }
            Isa::Portable
        })
    }

    /// What Easel's CPU kernels run on in this process: `avx512`, `avx2`, `portable`, or `off`
    /// (`EASEL_CPU_KERNELS=0`). `easel bench model` reports it.
    pub fn in_use() -> &'static str {
        if !enabled() {
            return "off";
        }
        match Self::detect() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Every vector unit this CPU can run, narrowest first (for tests that check each).
    pub fn available() -> Vec<Self> {
        let mut out = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            match Self::detect() {
                Isa::Avx512 => out.extend([Isa::Avx2, Isa::Avx512]),
                Isa::Avx2 => out.push(Isa::Avx2),
                Isa::Portable => {}
            }
        }
        out
    }
}

/// Defines `fn $name(isa: Isa, args…)` that runs `$body` compiled for the given vector unit:
/// the body is written once, in plain Rust that compilers vectorise, and instantiated with
/// each unit's target features.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::cpu::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match isa {
                    // SAFETY: `Isa::detect` saw these features on this CPU.
                    $crate::cpu::Isa::Avx512 => return unsafe { v4($($arg),*) },
                    $crate::cpu::Isa::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::cpu::Isa::Portable => {}
                }
            }
            let _ = isa;
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_buffers_hold_what_each_chunk_wrote() {
        // A last chunk shorter than the rest; each element is its chunk's index and position.
        let v = par_filled(2 * PAR_CHUNK + 5, PAR_CHUNK, |i, part| {
            part.iter_mut().enumerate().for_each(|(j, x)| *x = (i * 100_000 + j) as f32)
        });
        assert_eq!(v.len(), 2 * PAR_CHUNK + 5);
        assert_eq!((v[0], v[PAR_CHUNK - 1], v[PAR_CHUNK], v[2 * PAR_CHUNK + 4]), (0.0, (PAR_CHUNK - 1) as f32, 100_000.0, 200_004.0));
        // Rows of a bias (wider than a task's share, and narrow), zeros, and empty shapes.
        for width in [3, PAR_CHUNK + 7] {
            let row: Vec<f32> = (0..width).map(|j| j as f32 + 0.5).collect();
            let rows = par_rows(5, width, Some(&row));
            assert!(rows.chunks_exact(width).all(|r| r == row.as_slice()) && rows.len() == 5 * width);
            assert!(par_rows(5, width, None).iter().all(|&x| x == 0.0));
        }
        assert!(par_rows(0, 4, None).is_empty() && par_rows(4, 0, Some(&[])).is_empty());
    }

    #[test]
    fn weight_buffers_start_on_a_cache_line_and_large_ones_on_a_huge_page() {
        for len in [1, 17, 1000] {
            let v = aligned_zeros::<f32>(len);
            assert_eq!((v.len(), v.as_ptr() as usize % 64), (len, 0));
            assert!(v.iter().all(|&x| x == 0.0));
        }
        let v = aligned_zeros::<i8>(HUGE_PAGE + 3);
        assert_eq!((v.len(), v.as_ptr() as usize % HUGE_PAGE), (HUGE_PAGE + 3, 0));
        assert!(v.iter().all(|&x| x == 0));
    }
}
