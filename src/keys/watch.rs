//! Following a folder for changes (the key-ring file's folder, and the manifests folder of
//! `serve`, which shares this watcher):
//! a non-recursive platform watcher that signals "something changed" on a channel, the filter of
//! events worth a re-read, and the debounce that coalesces a burst of events into one re-read.
//! When no watcher can be set up, callers poll every [`FALLBACK_POLL`].

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often a folder is re-read when no watcher could be set up.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);
/// A burst of events ends after this long without another one.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Upper bound on the wait, so a file written continuously is still re-read.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Watches `folder` (not recursively), sending `()` on `events` for each relevant change. `None`
/// when the platform watcher cannot be set up (the caller polls); only the `first` failure is
/// logged at WARN, so polling stays quiet. `what` names the folder in logs.
pub fn watch_folder(
    folder: &Path,
    events: &mpsc::Sender<()>,
    first: bool,
    what: &str,
) -> Option<RecommendedWatcher> {
    let tx = events.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        // A watcher error may mean missed events: re-read to be safe.
        if res.map(|e| is_change(&e.kind)).unwrap_or(true) {
            // Full means a re-read is already pending; dropping this one coalesces.
            let _ = tx.try_send(());
        }
    };
    let result = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(folder, RecursiveMode::NonRecursive).map(|()| w));
    match result {
        Ok(w) => {
            tracing::debug!(folder = %folder.display(), "watching the {what}");
            Some(w)
        }
        Err(e) if first => {
            tracing::warn!(folder = %folder.display(), error = %e, poll_secs = FALLBACK_POLL.as_secs(), "cannot watch the {what}; polling it instead");
            None
        }
        Err(e) => {
            tracing::debug!(folder = %folder.display(), error = %e, "cannot watch the {what} yet");
            None
        }
    }
}

/// Waits until no event arrived for [`DEBOUNCE`] (at most [`MAX_DEBOUNCE`]); `false` when
/// cancelled meanwhile.
pub async fn debounce(events: &mut mpsc::Receiver<()>, cancel: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
    loop {
        let quiet_until = (tokio::time::Instant::now() + DEBOUNCE).min(deadline);
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep_until(quiet_until) => return true,
            Some(()) = events.recv() => {}
        }
    }
}

/// Events that can change what a re-read sees. Opens and reads (our own re-reads cause them)
/// and metadata-only changes are not.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    #[test]
    fn our_own_reads_do_not_count_as_changes() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
    }

    #[test]
    fn writes_creates_renames_and_removals_count() {
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_is_one_re_read_and_cancel_stops_the_wait() {
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        for _ in 0..3 {
            tx.try_send(()).unwrap_or_default();
        }
        let started = tokio::time::Instant::now();
        assert!(debounce(&mut rx, &cancel).await);
        assert!(rx.try_recv().is_err(), "the burst was consumed");
        assert!(started.elapsed() >= DEBOUNCE);
        cancel.cancel();
        assert!(!debounce(&mut rx, &cancel).await);
    }
}
