//! Thread policy of the fused kernels: at most `n_threads` threads, the calling thread included.
//!
//! - Work below [`PAR_MIN_WORK`] element operations (or `n_threads <= 1`) runs serially in the
//!   calling thread: no pool is touched, so small shapes pay no synchronisation.
//! - Otherwise the rows are cut into at most `TASKS_PER_THREAD · n_threads` tasks of at least
//!   [`GRAIN`] operations; the calling thread and the `n_threads − 1` workers of a cached rayon
//!   pool take tasks from a shared counter until none is left (dynamic scheduling: a core slowed
//!   by another process simply takes fewer tasks). The pools are built once per size and kept.
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
    let Some(pool) = (n > 1).then(|| pool(n - 1)).flatten() else {
        tasks.into_iter().for_each(|t| call(&f, t));
        return;
    };
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
    pool.in_place_scope(|s| {
        for _ in 1..n {
            s.spawn(|_| work());
        }
        work();
    });
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
