//! Work no request waits for (writing a snapshot of the whole table), on a thread of its
//! own at a lower CPU priority: where it shares a core with the data plane, the data
//! plane runs first, and the snapshot takes the time left over.

use std::io;

/// The nice value of a background thread: about a tenth of a core's time against a busy
/// thread at the default priority, so the work still ends under full load.
const NICE: libc::c_int = 10;

/// Runs `work` on a new thread named `name` at a lower priority, and waits for its
/// result without holding the async runtime.
pub(crate) async fn run<T, F>(name: &str, work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| io::Error::other("background thread ended without a result"))
}

/// Lowers the calling thread's priority. On Linux a thread id given to `setpriority`
/// sets that thread's nice value alone; a failure leaves the priority as it was.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: two system calls on the calling thread, with no memory passed.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_work_runs_on_a_lower_priority_thread_and_returns() {
        let nice = super::run("hf-test", || {
            // SAFETY: reads the calling thread's nice value.
            #[cfg(target_os = "linux")]
            unsafe {
                libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
            }
            #[cfg(not(target_os = "linux"))]
            super::NICE
        })
        .await
        .expect("the thread's result");
        assert_eq!(nice, super::NICE);
    }
}
