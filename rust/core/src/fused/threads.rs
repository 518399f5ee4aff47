//! Thread policy of the fused kernels: at most `n_threads` threads, the calling thread included.
//!
//! - Work below [`PAR_MIN_WORK`] element operations (or `n_threads <= 1`) runs serially in the
//!   calling thread: no pool is touched, so small shapes pay no synchronisation.
//! - Otherwise the rows are cut into at most `TASKS_PER_THREAD · n_threads` tasks of at least
//!   [`GRAIN`] operations, which the threads of a team take from a shared counter until none is
//!   left (dynamic scheduling: a core slowed by another process simply takes fewer tasks).
//! - The team is the process's OpenMP team when an OpenMP runtime is loaded (torch's libgomp on
//!   Linux; `GOMP_parallel` looked up at run time, nothing linked): the kernels then share
//!   torch's intra-op threads instead of adding a pool of their own, whose workers would compete
//!   with torch's still-spinning OpenMP workers after every parallel torch op. Otherwise, or with
//!   `VSM_RUST_POOL=rayon` in the environment, it is the calling thread and the `n_threads − 1`
//!   workers of a cached rayon pool (built once per size and kept).
//!
//! The caller (vsm's Python layer) passes `torch.get_num_threads()`, so a kernel never has more
//! threads running than torch's own intra-op pool would for an op of the same size; torch ops and
//! the Rust kernels run one after the other, never concurrently.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Element operations below which a kernel runs serially.
pub const PAR_MIN_WORK: usize = 1 << 15;
/// Minimum element operations per parallel task.
pub const GRAIN: usize = 1 << 13;
/// Tasks per thread (slack for dynamic scheduling).
const TASKS_PER_THREAD: usize = 4;

/// Cached pools, index = number of worker threads.
fn pools() -> &'static Mutex<Vec<Option<Arc<ThreadPool>>>> {
    static POOLS: OnceLock<Mutex<Vec<Option<Arc<ThreadPool>>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The cached pool of `workers` threads (built on first use); `None` if it cannot be built.
fn pool(workers: usize) -> Option<Arc<ThreadPool>> {
    let mut cache = pools().lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() <= workers {
        cache.resize(workers + 1, None);
    }
    if cache[workers].is_none() {
        cache[workers] = ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("vsm-fused-{i}"))
            .build()
            .ok()
            .map(Arc::new);
    }
    cache[workers].clone()
}

/// Task boundaries: `units` rows of `work_per_unit` operations each, split into contiguous ranges
/// `bounds[k]..bounds[k+1]` (one range when the work should run serially).
pub fn plan(n_threads: usize, units: usize, work_per_unit: usize) -> Vec<usize> {
    let work = units.saturating_mul(work_per_unit.max(1));
    let n_tasks = if n_threads <= 1 || work < PAR_MIN_WORK {
        1
    } else {
        (TASKS_PER_THREAD * n_threads)
            .min(work / GRAIN)
            .clamp(1, units.max(1))
    };
    (0..=n_tasks).map(|k| k * units / n_tasks).collect()
}

/// `f(task)`, compiled for AVX2 when the CPU has it (x86-64; the crate's baseline is SSE2).
///
/// `f` is a task body called from here only, so LLVM inlines it into the AVX2 copy and the hot
/// loops vectorise 8 × f32 / 4 × f64 wide. No FMA contraction happens either way (Rust never
/// fuses a·b + c), so both copies round identically.
#[inline(always)]
fn call<I, F: Fn(I)>(f: &F, task: I) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<I, F: Fn(I)>(f: &F, task: I) {
            f(task)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(f, task) };
        }
    }
    f(task)
}

/// Run `f` on every task with at most `n_threads` threads (the calling thread included).
///
/// Serial when there is one task or `n_threads <= 1`; otherwise dynamic scheduling over a shared
/// counter (see the module docs). Panics in `f` propagate.
pub fn run<I: Send, F: Fn(I) + Sync>(n_threads: usize, tasks: Vec<I>, f: F) {
    let n = n_threads.min(tasks.len());
    if n <= 1 {
        tasks.into_iter().for_each(|t| call(&f, t));
        return;
    }
    let slots: Vec<Mutex<Option<I>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(i) else { break };
        let task = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            call(&f, task);
        }
    };
    if omp::parallel(n, &work) {
        return;
    }
    let Some(pool) = pool(n - 1) else {
        work();
        return;
    };
    pool.in_place_scope(|s| {
        for _ in 1..n {
            s.spawn(|_| work());
        }
        work();
    });
}

/// The OpenMP team of the process, when one is loaded (torch's `libgomp` on Linux): running the
/// tasks on it shares torch's intra-op threads instead of adding a second pool. After a parallel
/// torch op, torch's OpenMP workers keep spinning for a while; a separate pool's workers then
/// compete with them for the cores, measured 1.1–2× slower than serial on a 2-core machine.
mod omp {
    use std::ffi::{c_uint, c_void};
    use std::sync::OnceLock;

    type Body = unsafe extern "C" fn(*mut c_void);
    type Parallel = unsafe extern "C" fn(Body, *mut c_void, c_uint, c_uint);

    /// `GOMP_parallel` of the libgomp already in the process (never loads one), if any.
    fn gomp_parallel() -> Option<Parallel> {
        static F: OnceLock<Option<Parallel>> = OnceLock::new();
        *F.get_or_init(|| {
            if std::env::var_os("VSM_RUST_POOL").is_some_and(|v| v == "rayon") {
                return None;
            }
            #[cfg(target_os = "linux")]
            {
                use std::ffi::c_char;
                extern "C" {
                    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
                }
                // SAFETY: RTLD_DEFAULT (null on glibc and musl) searches the loaded objects;
                // the symbol, when present, is libgomp's GOMP_parallel with this signature.
                let p = unsafe { dlsym(std::ptr::null_mut(), c"GOMP_parallel".as_ptr()) };
                (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, Parallel>(p) })
            }
            #[cfg(not(target_os = "linux"))]
            None
        })
    }

    struct Job<'a, W> {
        work: &'a W,
        panicked: std::sync::atomic::AtomicBool,
    }

    unsafe extern "C" fn body<W: Fn() + Sync>(data: *mut c_void) {
        // SAFETY: `data` is the `Job` that `parallel` keeps alive until GOMP_parallel returns.
        let job = unsafe { &*(data as *const Job<'_, W>) };
        // no unwinding across the C frames of libgomp: a panic is recorded and re-raised
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.work)).is_err() {
            job.panicked
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Runs `work` on every thread of an OpenMP team of `n` threads (the calling thread
    /// included) and returns true, or returns false when no OpenMP runtime is loaded.
    pub(super) fn parallel<W: Fn() + Sync>(n: usize, work: &W) -> bool {
        let Some(gomp) = gomp_parallel() else {
            return false;
        };
        let job = Job {
            work,
            panicked: false.into(),
        };
        let n = c_uint::try_from(n).unwrap_or(c_uint::MAX);
        // SAFETY: `body::<W>` only reads `job`, which outlives the call (GOMP_parallel joins
        // the team before returning); flags 0 = default proc binding.
        unsafe { gomp(body::<W>, &job as *const Job<'_, W> as *mut c_void, n, 0) };
        if job.panicked.into_inner() {
            panic!("a fused-kernel task panicked on an OpenMP thread");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_serial_below_threshold_or_one_thread() {
        assert_eq!(plan(8, 10, 10), vec![0, 10]);
        assert_eq!(plan(1, 1 << 20, 1 << 10), vec![0, 1 << 20]);
        assert_eq!(plan(4, 0, 100), vec![0, 0]);
    }

    #[test]
    fn plan_covers_all_units_in_order() {
        let b = plan(3, 1000, 1000);
        assert_eq!(b.len(), 13); // 12 tasks
        assert_eq!((b[0], b[12]), (0, 1000));
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        // never more tasks than units
        assert_eq!(plan(16, 3, 1 << 20), vec![0, 1, 2, 3]);
    }

    #[test]
    fn run_visits_each_task_once_with_any_thread_count() {
        for n_threads in [1usize, 2, 3, 8] {
            let mut out = vec![0usize; 100];
            let tasks: Vec<(usize, &mut [usize])> = out.chunks_mut(7).enumerate().collect();
            run(n_threads, tasks, |(k, chunk)| {
                for (j, v) in chunk.iter_mut().enumerate() {
                    *v += k * 7 + j + 1;
                }
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i + 1));
        }
    }

    #[test]
    fn run_uses_at_most_n_threads() {
        let seen = Mutex::new(std::collections::HashSet::new());
        let tasks: Vec<usize> = (0..64).collect();
        run(3, tasks, |_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_millis(1));
        });
        assert!(seen.lock().unwrap().len() <= 3);
    }
}
