//! `--encryption-key-file`: re-read the key ring file or directory when it changes and hand the
//! result to the [`KeyRingReloader`] (which keeps the old ring when the new one is bad).
//!
//! The folder holding the ring is watched (`notify`), not the file itself: a mounted Kubernetes
//! Secret changes by swapping its `..data` symlink to a new timestamped directory, which a
//! watch on the old file would never report, and editors replace files by rename. Events are
//! debounced; the folder is also re-read every [`SAFETY_POLL`] in case an event was missed, and
//! polled every [`FALLBACK_POLL`] when no watcher can be set up. Re-reading an unchanged ring
//! does nothing, and the same problem is reported once, not on every poll.

use super::reload::KeyRingReloader;
use super::watch::{FALLBACK_POLL, debounce, watch_folder};
use crate::crypto::KeyRing;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Re-read interval while a watcher runs.
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// How the watched folder is named in logs.
const FOLDER: &str = "key ring's folder";

/// Follows `path` (a key ring file or directory) until `cancel` fires.
pub fn spawn(
    path: PathBuf,
    reloader: Arc<KeyRingReloader>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let folder = watched_folder(&path);
    let (tx, mut events) = mpsc::channel::<()>(1);
    // Watch before returning, and re-read once right away: a change made between the start-up
    // load and this point is not missed.
    let mut watcher = watch_folder(&folder, &tx, true, FOLDER);
    let _ = tx.try_send(());
    tokio::spawn(async move {
        let mut last_problem: Option<String> = None;
        loop {
            let poll = if watcher.is_some() {
                SAFETY_POLL
            } else {
                FALLBACK_POLL
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                Some(()) = events.recv() => {
                    if !debounce(&mut events, &cancel).await {
                        return;
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }
            if watcher.is_none() {
                watcher = watch_folder(&folder, &tx, false, FOLDER);
            }
            let read_path = path.clone();
            let loaded = match tokio::task::spawn_blocking(move || KeyRing::load(&read_path)).await
            {
                Ok(loaded) => loaded,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the key ring failed; retrying on the next change");
                    continue;
                }
            };
            match loaded {
                Ok(ring) => {
                    last_problem = None;
                    reloader.offer(Ok(ring));
                }
                Err(e) => {
                    let problem = e.to_string();
                    if last_problem.as_deref() != Some(problem.as_str()) {
                        reloader.offer(Err(e));
                        last_problem = Some(problem);
                    }
                }
            }
        }
    })
}

/// The folder whose entries change when the ring does: the directory itself, or a file's
/// parent.
fn watched_folder(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyRingHandle;
    use crate::http::Readiness;
    use crate::keys::KeyRingMetrics;
    use std::fs;
    use std::time::Instant;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn reloader(path: &Path) -> (Arc<KeyRingReloader>, KeyRingHandle) {
        let handle = KeyRingHandle::new(KeyRing::load(path).unwrap_or_else(|e| panic!("{e}")));
        let reloader = KeyRingReloader::loaded(
            format!("key file {}", path.display()),
            handle.clone(),
            KeyRingMetrics::default(),
            Arc::new(Readiness::new()),
        );
        (reloader, handle)
    }

    async fn wait_for(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_rewritten_file_is_reloaded_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("ring.yaml");
        fs::write(&file, format!("k1: {K1}\n")).unwrap_or_else(|e| panic!("{e}"));
        let (reloader, handle) = reloader(&file);
        let cancel = CancellationToken::new();
        let task = spawn(file.clone(), reloader.clone(), cancel.clone());

        // Written elsewhere and renamed into place, as editors and config tools do.
        let tmp = dir.path().join(".ring.tmp");
        fs::write(&tmp, format!("primary: k2\nk1: {K1}\nk2: {K2}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::rename(&tmp, &file).unwrap_or_else(|e| panic!("{e}"));
        wait_for("k2 is primary", || handle.current().primary_id() == "k2").await;
        assert_eq!(handle.generation(), 2);

        fs::write(&file, "primary: k3\n").unwrap_or_else(|e| panic!("{e}"));
        let metrics = reloader.metrics();
        wait_for("the broken ring is refused", || {
            metrics.reload_failures.get() == 1
        })
        .await;
        assert_eq!(handle.current().primary_id(), "k2");
        assert_eq!(handle.generation(), 2);
        cancel.cancel();
        let _ = task.await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_kubernetes_secret_volume_swap_is_seen() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        // The layout the kubelet writes: entries → ..data/<entry>, ..data → ..<timestamp>.
        let write_version = |name: &str, entries: &[(&str, &str)]| {
            fs::create_dir(root.join(name)).unwrap_or_else(|e| panic!("{e}"));
            for (k, v) in entries {
                fs::write(root.join(name).join(k), v).unwrap_or_else(|e| panic!("{e}"));
            }
        };
        write_version("..2025_01_01_v1", &[("primary", "k1"), ("k1", K1)]);
        symlink("..2025_01_01_v1", root.join("..data")).unwrap_or_else(|e| panic!("{e}"));
        for entry in ["primary", "k1"] {
            symlink(format!("..data/{entry}"), root.join(entry)).unwrap_or_else(|e| panic!("{e}"));
        }
        let (reloader, handle) = reloader(root);
        let cancel = CancellationToken::new();
        let task = spawn(root.to_path_buf(), reloader, cancel.clone());

        write_version(
            "..2025_01_02_v2",
            &[("primary", "k2"), ("k1", K1), ("k2", K2)],
        );
        symlink("..2025_01_02_v2", root.join("..data_tmp")).unwrap_or_else(|e| panic!("{e}"));
        fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap_or_else(|e| panic!("{e}"));
        symlink("..data/k2", root.join("k2")).unwrap_or_else(|e| panic!("{e}"));

        wait_for("k2 is primary", || handle.current().primary_id() == "k2").await;
        assert_eq!(handle.current().key_ids(), ["k1", "k2"]);
        cancel.cancel();
        let _ = task.await;
    }

    #[test]
    fn the_folder_of_a_file_is_watched() {
        assert_eq!(
            watched_folder(Path::new("/etc/keys/ring")),
            Path::new("/etc/keys")
        );
        assert_eq!(watched_folder(Path::new("ring")), Path::new("."));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(watched_folder(dir.path()), dir.path());
    }
}
