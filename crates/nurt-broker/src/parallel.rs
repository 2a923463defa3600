//! Bounded parallel disk work (opening thousands of partitions, flushing them at shutdown):
//! fsyncs and directory creation wait on the device, not the CPU, so a few threads keep its
//! queue busy where one would wait for each in turn (issue 13: 6,660 partitions took 34 s to
//! close one after another).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Threads for disk-bound work: enough to keep a device queue busy, bounded whatever the
/// core count.
pub const DISK_THREADS_MAX: usize = 16;

/// Applies `f` to every item on up to `threads` scoped threads; results in the items' order.
/// Runs inline for one item or one thread.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u64> = (0..1000).collect();
        assert_eq!(
            super::map(&items, 8, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(super::map(&[] as &[u64], 8, |x| *x), Vec::<u64>::new());
        assert_eq!(super::map(&[3u64], 8, |x| *x), vec![3]);
    }
}
