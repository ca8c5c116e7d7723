//! The daemon and glibc's allocator. glibc keeps freed memory mapped, in one
//! arena per thread (up to 8 per core), so a daemon that once held a big peak
//! (a 100,000-row index parsed, 100,000 files judged on several threads) would
//! keep it for good, and every fork of an agent would copy the page tables of
//! all of it. Elsewhere these do nothing. A leaf.

/// One malloc arena for all the daemon's threads. It allocates little and
/// rarely at once (the per-thread caches serve small allocations without the
/// lock); with several arenas, memory freed after a burst stays spread over
/// them: 100,000 queued files took 39 MiB with them, 33 MiB with one
/// (bench/bench_queue.py; the 1,000-task burst the same, 1.59x vs 1.61x).
/// Called before the runtime's threads start.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // A fixed threshold: big blocks (a map of 100,000 waiting files, and
        // each copy it grows through) are mapped on their own and go back to
        // the OS when freed. glibc's default raises the threshold to the
        // biggest block freed, after which such blocks come from the heap
        // and stay resident after they are freed.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Gives memory freed after a big job back to the OS: after a big index is
/// parsed (a 30 MB parse made later spawns 6x slower on a 100,000-row home),
/// and after a burst of a thousand files or more was judged.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
