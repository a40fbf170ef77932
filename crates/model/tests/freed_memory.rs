//! `cpu::keep_freed_memory`: a block freed and asked for again comes back without page faults.
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
