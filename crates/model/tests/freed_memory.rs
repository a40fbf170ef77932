//! `cpu::keep_freed_memory`: a block freed and asked for again comes back without page faults,
//! and weights laid out on such kept memory still get huge pages.
//! Its own test binary, so no other test's thread shares the allocator's arena meanwhile.
//! glibc on Linux only: elsewhere `keep_freed_memory` does nothing.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Minor page faults this thread has taken so far.
fn faults() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the buffer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: getrusage succeeded, so the struct is filled in.
    unsafe { usage.assume_init() }.ru_minflt
}

/// Fills `bytes` in a new buffer (every page touched), drops it, and returns the faults taken.
fn fill_and_free(bytes: usize) -> i64 {
    let before = faults();
    let buffer = std::hint::black_box(vec![1u8; bytes]);
    assert_eq!(buffer[bytes - 1], 1);
    drop(buffer);
    faults() - before
}

#[test]
fn a_freed_layer_sized_buffer_is_reused_without_faulting_its_pages_in_again() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        eprintln!("GLIBC_TUNABLES is set, so keep_freed_memory leaves glibc as it is: skipped");
        return;
    }
    easel_model::cpu::keep_freed_memory();
    // A layer's output at batch 4 (672 rows × 8 960 f32 is 24 MB); 8 MB is 2 048 pages.
    let bytes = 8 << 20;
    let first = fill_and_free(bytes);
    assert!(first >= 1_000, "the first fill faults its pages in: {first}");
    for round in 0..3 {
        let again = fill_and_free(bytes);
        assert!(again < 100, "round {round}: the freed buffer came back with {again} page faults");
    }
}

/// Whether transparent huge pages may back memory that asks for them (`always` or `madvise`).
fn huge_pages_allowed() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| !mode.contains("[never]"))
}

/// KiB of huge pages backing the mappings that overlap `start..end`, from `/proc/self/smaps`.
fn huge_kb_around(start: usize, end: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("reading /proc/self/smaps");
    let mut overlaps = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            overlaps = lo < end && start < hi;
        } else if overlaps && let Some(value) = line.strip_prefix("AnonHugePages:") {
            kb += value.trim().trim_end_matches("kB").trim().parse::<u64>().expect("AnonHugePages in kB");
        }
    }
    kb
}

#[test]
fn weights_laid_out_on_memory_glibc_kept_still_get_huge_pages() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() || !huge_pages_allowed() {
        eprintln!("GLIBC_TUNABLES is set or transparent huge pages are off: skipped");
        return;
    }
    easel_model::cpu::keep_freed_memory();
    // Heap memory glibc keeps, backed by 4 KiB pages: what a layer's outputs leave behind.
    for _ in 0..2 {
        let blocks: Vec<Vec<u8>> = (0..4).map(|_| std::hint::black_box(vec![1u8; 24 << 20])).collect();
        drop(blocks);
    }
    // 24 MiB of panels (under glibc's 32 MiB mmap threshold, so from that heap).
    let (k, n) = (1536, 4096);
    let panels = easel_model::cpu::panels::to_panels(&vec![0.5f32; k * n], k, n);
    let (start, bytes) = (panels.as_ptr() as usize, panels.len() * 4);
    let whole = (bytes >> 21) as u64 * 2048;
    let huge = huge_kb_around(start, start + bytes);
    assert!(huge >= whole, "{huge} KiB of huge pages under {bytes} bytes of panels, not {whole}");
}
