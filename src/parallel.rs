//! Running work on the math threads: a batch's rows split into one contiguous slice per
//! worker, the workers run on a pool whose threads flush subnormals, and their gradients summed
//! in worker order, so that a given thread count always gives the same bits. Every engine
//! (the seq2seq models, the length-generalisation transformer and GRU) runs through here; the
//! configs resolve their thread counts here too.

use crate::nn::Real;

/// Contiguous row ranges of `n` rows, one per worker of `workers` (empty ones dropped).
pub(crate) fn worker_slices(n: usize, workers: usize) -> Vec<(usize, usize)> {
    let per = n.div_ceil(workers.max(1));
    (0..workers)
        .map(|i| (i * per, ((i + 1) * per).min(n)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// Where [`run_on_slices`] sums the workers' gradients, and how to read one worker's.
pub(crate) type GradSum<'a, W, R> = (&'a mut [R], fn(&W) -> &[R]);

/// Runs `work(worker, a, b)` for each row range of `slices` on its own pool thread, one worker
/// each, and returns their results in slice order. With `grad = Some((out, of))` the workers'
/// gradients (`of(worker)`) are then summed into `out` in worker order. The workers' products
/// share their row panels with the pool ([`crate::nn::sgemm::share_panels`]): a worker that
/// finishes first computes panels of the others' (the same bits), so `work` must hold no lock
/// while it runs products.
pub(crate) fn run_on_slices<W: Send, R: Real, S: Default + Send>(
    pool: &rayon::ThreadPool,
    workers: &mut [W],
    slices: &[(usize, usize)],
    work: impl Fn(&mut W, usize, usize) -> S + Sync,
    grad: Option<GradSum<'_, W, R>>,
) -> Vec<S> {
    let workers = &mut workers[..slices.len()];
    let mut out: Vec<S> = slices.iter().map(|_| S::default()).collect();
    let work = &work;
    pool.scope(|sc| {
        for ((w, &(a, b)), o) in workers.iter_mut().zip(slices).zip(out.iter_mut()) {
            sc.spawn(move |_| *o = crate::nn::sgemm::share_panels(|| work(w, a, b)));
        }
    });
    if let Some((sum, of)) = grad {
        let parts: Vec<&[R]> = workers.iter().map(of).collect();
        sum_in_worker_order(pool, sum, &parts);
    }
    out
}

/// `out = parts[0] + parts[1] + ...`, element by element in worker order, chunk by chunk on
/// `pool`: each element's sum is the same whatever thread computes it, so results depend only on
/// the worker count.
pub(crate) fn sum_in_worker_order<R: Real>(
    pool: &rayon::ThreadPool,
    out: &mut [R],
    parts: &[&[R]],
) {
    use rayon::prelude::*;
    const CHUNK: usize = 16 * 1024;
    pool.install(|| {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, g)| {
            let r = ci * CHUNK..ci * CHUNK + g.len();
            // The first two parts in one pass (a copy, then an add, was one more pass over
            // the chunk), then the rest in order.
            match parts {
                [only] => g.copy_from_slice(&only[r.clone()]),
                [first, second, ..] => {
                    for ((o, a), b) in g.iter_mut().zip(&first[r.clone()]).zip(&second[r.clone()]) {
                        *o = *a + *b;
                    }
                }
                [] => g.fill(R::ZERO),
            }
            for part in parts.iter().skip(2) {
                for (a, b) in g.iter_mut().zip(&part[r.clone()]) {
                    *a += *b;
                }
            }
        });
    });
}

/// The most worker threads a run may ask for.
pub const MAX_THREADS: usize = 256;

/// The number of cores, the default thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A configured thread count: 0 means one per core.
pub fn threads_or_cores(threads: usize) -> usize {
    if threads == 0 {
        default_threads()
    } else {
        threads
    }
}

/// A pool of `threads` math threads (subnormals flushed on each, and on the caller's).
pub(crate) fn math_pool(threads: usize) -> rayon::ThreadPool {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .start_handler(|_| crate::nn::flush_denormals())
        .build()
        .expect("thread pool");
    crate::nn::flush_denormals();
    pool
}
