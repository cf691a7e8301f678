//! How many threads kiln's stages share: rayon's global pool, sized for
//! reads rather than for cores.

/// Threads per core: the walk, the details of each entry (xattrs, holes)
/// and emit's copies each wait on one read at a time, and on a cold cache
/// those waits are most of a build (BENCHMARKS.md, "Cold caches"). With
/// more reads in flight the device serves several at once; on a warm cache
/// the extra threads cost little, as they mostly copy.
const THREADS_PER_CORE: usize = 8;
/// At most this many threads, unless there are more cores.
const MAX_THREADS: usize = 32;

/// Sizes rayon's global pool for kiln: 8 threads per core, at most 32 (or
/// one per core where there are more). Call it
/// before the first build. `RAYON_NUM_THREADS`, if set, wins, and a pool
/// that is already running is left as it is: a program that sizes its own
/// pool need not call this.
pub fn size_thread_pool() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = (cores * THREADS_PER_CORE).min(MAX_THREADS).max(cores);
    // An error means the pool was built already: it stays as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}
