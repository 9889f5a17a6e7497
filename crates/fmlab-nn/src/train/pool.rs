//! Large activation and gradient buffers drawn from a per-thread pool and returned to it on
//! drop (`Buf`), so that a training step does not map its activations again every time.

use super::float::Float;

/// Buffers of at least this many elements go back to the pool when dropped.
const POOLED: usize = 1 << 14;

/// An activation or gradient buffer drawn from the calling thread's pool and returned to
/// it when dropped: a training step needs the same large buffers every time, and taking
/// them from the pool instead of the allocator saves mapping, faulting in and unmapping
/// hundreds of megabytes per step (llm.c keeps one activation arena for the same reason).
pub(super) struct Buf<T: Float>(Vec<T>);

impl<T: Float> Buf<T> {
    pub(super) fn take(n: usize) -> Vec<T> {
        if n < POOLED {
            return Vec::with_capacity(n);
        }
        T::pool()
            .with(|pool| {
                let mut pool = pool.borrow_mut();
                let i = pool
                    .iter()
                    .position(|v| v.capacity() >= n && v.capacity() <= 2 * n)?;
                Some(pool.swap_remove(i))
            })
            .unwrap_or_else(|| Vec::with_capacity(n))
    }

    /// `n` zeros.
    pub(super) fn zeros(n: usize) -> Self {
        let mut v = Self::take(n);
        v.clear();
        v.resize(n, T::zero());
        Buf(v)
    }

    /// `n` values left from the buffer's last use: for outputs that are written in full
    /// before anything reads them.
    pub(super) fn stale(n: usize) -> Self {
        let mut v = Self::take(n);
        v.truncate(n);
        v.resize(n, T::zero());
        Buf(v)
    }

    pub(super) fn copy_of(x: &[T]) -> Self {
        let mut b = Self::stale(x.len());
        b.copy_from_slice(x);
        b
    }
}

impl<T: Float> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Float> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: Float> Drop for Buf<T> {
    fn drop(&mut self) {
        if self.0.capacity() >= POOLED {
            let v = std::mem::take(&mut self.0);
            // At most a few hundred buffers: one step's working set.
            let _ = T::pool().try_with(|pool| {
                if let Ok(mut pool) = pool.try_borrow_mut() {
                    if pool.len() < 512 {
                        pool.push(v);
                    }
                }
            });
        }
    }
}

/// Returns the calling thread's pooled buffers to the allocator (after training).
pub fn release_buffers() {
    let _ = f32::pool().try_with(|p| p.borrow_mut().clear());
    let _ = f64::pool().try_with(|p| p.borrow_mut().clear());
}
