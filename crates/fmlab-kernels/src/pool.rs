//! A spinning thread pool for the operations of one forward pass.
//!
//! Decoding one token runs about 210 parallel matrix products of some tens of microseconds
//! each. Rayon's idle workers go to sleep between them, and waking one costs a system call
//! and a scheduler round trip per product (≈ 10% of decode at 2 threads in the last
//! profile). Here the workers of a pass spin on one atomic word between products, as
//! llama.cpp's threadpool does, and fall asleep only after about half a millisecond
//! without work (between tokens, say).
//!
//! [`scope`] starts the workers for the length of a closure (a forward pass) and makes
//! [`for_each`] on that thread hand its tasks to them; elsewhere, or nested inside a task,
//! [`for_each`] falls back to rayon or to a plain loop. Tasks are claimed one at a time
//! from a shared counter, so threads that finish early take more: both threads finish
//! together even when one of them was descheduled. Written for this project: the pool is
//! a few atomics, and it is the part of scheduling the forward pass depends on.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;

/// Bits of the state word: the job's generation (high), its task count and the next
/// unclaimed task (low). A claim is one compare-and-swap on the whole word, so a thread
/// can only claim a task of the job whose generation, count and closure it read.
const INDEX_BITS: u32 = 20;
const COUNT_BITS: u32 = 20;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The most tasks one call hands to the pool; more run through rayon.
const MAX_TASKS: usize = INDEX_MASK as usize;
/// Rounds before an idle worker sleeps: ~50 µs of pauses, then yields (about a millisecond).
const SPINS: u32 = 4_000;
/// Spins after which a waiting thread also yields its core on every round: on a machine
/// with more runnable threads than cores, the thread it waits for may need that core.
const YIELD_AFTER: u32 = 2_000;

/// One round of waiting: a pause instruction, and a yield once the wait grows long.
fn pause(spins: u32) {
    if spins < YIELD_AFTER {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

struct Shared {
    /// The threads that take tasks: the workers and the thread of [`scope`].
    threads: usize,
    state: AtomicU64,
    /// The current job's closure: the address of a `&(dyn Fn(usize) + Sync)` on the
    /// stack of the thread running [`for_each`], valid until all its tasks are done.
    job: AtomicUsize,
    done: AtomicUsize,
    /// Whether a task of the current job panicked.
    panicked: AtomicBool,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

fn generation(state: u64) -> u64 {
    state >> (INDEX_BITS + COUNT_BITS)
}

impl Shared {
    /// Claims and runs tasks of the job of generation `gen` until none is left.
    fn work(&self, gen: u64) {
        loop {
            let state = self.state.load(Ordering::Acquire);
            let (count, index) = ((state >> INDEX_BITS) & COUNT_MASK, state & INDEX_MASK);
            if generation(state) != gen || index >= count {
                return;
            }
            let job = self.job.load(Ordering::Acquire) as *const Job<'static>;
            if self
                .state
                .compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: the claim succeeded on the word of generation `gen` with tasks left,
                // so that job is not finished: the thread that published it is still waiting
                // in `run`, and `job` (written before the generation, read after it) points at
                // its closure reference, alive until every claimed task is done.
                let task = || unsafe { (*job)(index as usize) };
                // A task that panics still counts as done, so that `run` does not wait for
                // it forever; `run` then panics on the calling thread.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).is_err() {
                    self.panicked.store(true, Ordering::Release);
                }
                self.done.fetch_add(1, Ordering::Release);
            }
        }
    }

    fn worker(&self) {
        let mut seen = generation(self.state.load(Ordering::Acquire));
        loop {
            let mut spins = 0;
            let gen = loop {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                let gen = generation(self.state.load(Ordering::Acquire));
                if gen != seen {
                    break gen;
                }
                spins += 1;
                if spins < SPINS {
                    pause(spins);
                    continue;
                }
                // Idle for a while: sleep until `run` or the end of the scope wakes us.
                let Ok(mut guard) = self.lock.lock() else {
                    return;
                };
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                while generation(self.state.load(Ordering::SeqCst)) == seen
                    && !self.stop.load(Ordering::SeqCst)
                {
                    guard = match self.wake.wait(guard) {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                }
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                spins = 0;
            };
            seen = gen;
            self.work(gen);
        }
    }

    /// Runs `f(0..n)` on this thread and the workers; returns when all are done.
    fn run(&self, n: usize, f: Job<'_>) {
        let gen = generation(self.state.load(Ordering::Acquire)) + 1;
        let job: *const Job<'_> = &f;
        self.job.store(job as usize, Ordering::Release);
        self.done.store(0, Ordering::Release);
        self.panicked.store(false, Ordering::Release);
        let word = (gen << (INDEX_BITS + COUNT_BITS)) | ((n as u64) << INDEX_BITS);
        self.state.store(word, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this wake-up after a sleeper's check of the state.
            drop(self.lock.lock());
            self.wake.notify_all();
        }
        self.work(gen);
        let mut spins = 0;
        while self.done.load(Ordering::Acquire) < n {
            spins += 1;
            pause(spins);
        }
        if self.panicked.load(Ordering::Acquire) {
            // The kernels do not panic (the workspace denies it); a bug that does is
            // reported where the work was asked for, not left as a hang.
            #[allow(clippy::panic)]
            {
                panic!("a task of the forward pass's thread pool panicked");
            }
        }
    }
}

thread_local! {
    /// The pool [`scope`] installed on this thread, while no task of it runs here.
    static CURRENT: Cell<Option<*const Shared>> = const { Cell::new(None) };
}

/// Runs `f` with `threads − 1` spinning workers beside this thread; [`for_each`] calls made
/// by `f` on this thread use them. With fewer than two threads, just runs `f`.
pub fn scope<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    if threads < 2 || CURRENT.with(|c| c.get()).is_some() {
        return f();
    }
    let shared = Shared {
        threads,
        state: AtomicU64::new(0),
        job: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        sleepers: AtomicUsize::new(0),
        lock: Mutex::new(()),
        wake: Condvar::new(),
    };
    /// Stops the workers and uninstalls the pool however `f` ends (a panic included), so
    /// that the scope's join does not wait forever.
    struct Stop<'a>(&'a Shared);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(None));
            self.0.stop.store(true, Ordering::SeqCst);
            drop(self.0.lock.lock());
            self.0.wake.notify_all();
        }
    }
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(|| shared.worker());
        }
        let _stop = Stop(&shared);
        CURRENT.with(|c| c.set(Some(&shared as *const Shared)));
        f()
    })
}

/// How many threads a [`for_each`] call made here shares its tasks among: the pool's, or 1
/// where this thread has none (rayon's calls are not counted: the kernels only plan for
/// the pool).
pub fn threads() -> usize {
    match CURRENT.with(|c| c.get()) {
        // SAFETY: as in `for_each`: the pointer is installed only inside its `scope`.
        Some(shared) => unsafe { (*shared).threads },
        None => 1,
    }
}

/// `f(i)` for every `i < n`, in parallel: on the pool of [`scope`] where this thread has
/// one, on rayon's otherwise. Inside a task of the pool it runs the tasks in order here.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    if n <= 1 {
        (0..n).for_each(f);
        return;
    }
    match CURRENT.with(|c| c.get()) {
        Some(shared) if n <= MAX_TASKS => {
            // While the tasks run, nested calls on this thread run inline.
            CURRENT.with(|c| c.set(None));
            /// Reinstalls the pool after the call, however it ends.
            struct Restore(*const Shared);
            impl Drop for Restore {
                fn drop(&mut self) {
                    CURRENT.with(|c| c.set(Some(self.0)));
                }
            }
            let _restore = Restore(shared);
            // SAFETY: `CURRENT` holds a pool only inside its `scope`, which outlives this
            // call (the pointer is removed before the scope's end).
            let shared = unsafe { &*shared };
            shared.run(n, &f);
        }
        _ => (0..n).into_par_iter().for_each(&f),
    }
}

/// Equal pieces of a mutable slice handed out by index to [`for_each`]'s tasks: piece `i`
/// is `width` elements from `i · width`. Each task takes only its own pieces.
pub struct Pieces<T> {
    ptr: *mut T,
    len: usize,
    width: usize,
}

// SAFETY: a `Pieces` only hands out disjoint pieces (`piece` requires distinct indices of
// its callers), each of which is a `&mut [T]` that may move between threads when `T: Send`.
unsafe impl<T: Send> Sync for Pieces<T> {}

impl<T> Pieces<T> {
    pub fn new(data: &mut [T], width: usize) -> Self {
        Pieces {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            width,
        }
    }

    /// Piece `i` (shorter at the end of the slice, empty past it).
    ///
    /// # Safety
    /// No two live pieces may have the same index, and the slice given to [`Self::new`]
    /// must outlive them without being used otherwise.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn piece(&self, i: usize) -> &mut [T] {
        let start = (i * self.width).min(self.len);
        let end = (start + self.width).min(self.len);
        // SAFETY: start..end lies in the slice, and no other piece overlaps it (caller).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task runs exactly once per call, over many calls in a row (the generations),
    /// with nested calls inline, and with rayon outside a scope.
    #[test]
    fn every_task_runs_once() {
        let counts: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        let total = scope(3, || {
            let mut total = 0;
            for round in 0..500 {
                let n = 1 + round % 97;
                for_each(n, |i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                    for_each(2, |_| {
                        counts[999].fetch_add(1, Ordering::Relaxed);
                    });
                });
                total += n;
            }
            total
        });
        let sum: usize = counts[..999]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        assert_eq!(sum, total);
        assert_eq!(counts[999].load(Ordering::Relaxed), 2 * total);
        let outside = AtomicUsize::new(0);
        for_each(10, |_| {
            outside.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(outside.load(Ordering::Relaxed), 10);
    }

    /// Workers that fell asleep between calls wake for the next one.
    #[test]
    fn sleeping_workers_wake() {
        let hits = AtomicUsize::new(0);
        scope(2, || {
            for _ in 0..3 {
                std::thread::sleep(std::time::Duration::from_millis(30));
                for_each(64, |_| {
                    hits.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(hits.load(Ordering::Relaxed), 192);
    }

    /// A task that panics, on whichever thread, ends the call with a panic instead of a
    /// hang, and the scope with it.
    #[test]
    fn a_panicking_task_is_reported() {
        let r = std::panic::catch_unwind(|| {
            scope(2, || {
                for_each(64, |i| {
                    if i % 7 == 3 {
                        #[allow(clippy::panic)]
                        {
                            panic!("task {i}")
                        }
                    }
                })
            })
        });
        assert!(r.is_err());
    }

    /// A panic inside the scope ends it instead of leaving the workers spinning.
    #[test]
    fn a_panic_ends_the_scope() {
        let r = std::panic::catch_unwind(|| {
            scope(2, || {
                for_each(4, |_| {});
                #[allow(clippy::panic)]
                {
                    panic!("inside the scope")
                }
            })
        });
        assert!(r.is_err());
    }
}
