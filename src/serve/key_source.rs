//! Where the encryption key ring comes from (`--encryption-key-file` or
//! `--encryption-key-secret`), checked at start-up, and the background work that follows it:
//! the file or Secret watch, and a rotation sweep whenever a ring with older keys is in use.

use super::keyring_reload::KeyRingReloader;
use crate::app::stores::StoreSetupError;
use crate::crypto::{KeyRing, KeyRingHandle};
use crate::metrics::Metrics;
use crate::store::ValkeySettings;
use crate::store::valkey::ValkeyStores;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Delay before a rotation sweep, so the server comes up (or settles after a reload) first.
const SWEEP_DELAY: Duration = Duration::from_secs(5);

/// A configured key-ring source.
#[derive(Clone)]
pub enum KeySource {
    None,
    /// Loaded at start-up (a bad ring stops the process), then followed.
    File {
        path: PathBuf,
        handle: KeyRingHandle,
    },
    /// Read through the API server after start-up; the stores stay closed until then.
    Secret {
        client: kube::Client,
        namespace: String,
        name: String,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// Resolves the flags. `kube` is the API server connection of `run` (`None` for `serve`):
    /// the Secret is read from its default namespace, which in a pod is the pod's own
    /// (the service account's namespace).
    pub fn resolve(
        args: &ValkeySettings,
        kube: Option<&kube::Client>,
    ) -> Result<KeySource, StoreSetupError> {
        if let Some(name) = &args.encryption_key_secret {
            check_secret_name(name)?;
            let Some(client) = kube else {
                return Err(StoreSetupError::Config(format!(
                    "--encryption-key-secret {name} is read through the Kubernetes API server and only works with `run`; with `serve`, use --encryption-key-file"
                )));
            };
            if args.encryption_key_file.is_some() {
                return Err(StoreSetupError::Config(
                    "--encryption-key-secret and --encryption-key-file exclude each other"
                        .to_owned(),
                ));
            }
            return Ok(KeySource::Secret {
                client: client.clone(),
                namespace: client.default_namespace().to_owned(),
                name: name.clone(),
            });
        }
        match &args.encryption_key_file {
            Some(path) => Ok(KeySource::File {
                handle: KeyRingHandle::new(KeyRing::load(path)?),
                path: path.clone(),
            }),
            None => Ok(KeySource::None),
        }
    }

    /// The ring handle, for a source loaded at start-up.
    pub fn handle(&self) -> Option<&KeyRingHandle> {
        match self {
            KeySource::File { handle, .. } => Some(handle),
            KeySource::None | KeySource::Secret { .. } => None,
        }
    }

    pub fn is_configured(&self) -> bool {
        !matches!(self, KeySource::None)
    }

    /// "key file PATH" / "Secret NAMESPACE/NAME", for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::None => "no key ring".to_owned(),
            KeySource::File { path, .. } => format!("key file {}", path.display()),
            KeySource::Secret {
                namespace, name, ..
            } => format!("Secret {namespace}/{name}"),
        }
    }
}

/// A Secret name as Kubernetes accepts it (DNS subdomain), so a typo fails at start-up.
fn check_secret_name(name: &str) -> Result<(), StoreSetupError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(StoreSetupError::Config(format!(
            "--encryption-key-secret {name:?} is not a valid Secret name (lower-case letters, digits, '-' and '.')"
        )))
    }
}

/// Follows `source` (if it can change) into `reloader` until `cancel` fires.
pub fn follow(source: &KeySource, reloader: &Arc<KeyRingReloader>, cancel: &CancellationToken) {
    match source {
        KeySource::None => {}
        KeySource::File { path, .. } => {
            super::keyring_file::spawn(path.clone(), reloader.clone(), cancel.clone());
        }
        KeySource::Secret {
            client,
            namespace,
            name,
        } => {
            crate::controller::keyring::spawn(
                client.clone(),
                namespace,
                name,
                reloader.clone(),
                cancel.clone(),
            );
        }
    }
}

/// Runs a rotation sweep (re-encrypt everything under the primary key) whenever the ring in use
/// holds more than one key: at start-up and after each reload. `stores` yields the Valkey stores
/// once they exist.
pub fn spawn_rotation_sweeps(
    reloader: &Arc<KeyRingReloader>,
    stores: impl Fn() -> Option<ValkeyStores> + Send + 'static,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut rings = reloader.subscribe();
    tokio::spawn(async move {
        let mut latest = rings.borrow_and_update().clone();
        loop {
            if let Some(handle) = latest.take()
                && handle.with(|r| r.key_ids().len() > 1)
            {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(SWEEP_DELAY) => {}
                }
                // A reload during the delay is swept next round with its own ring.
                if let Some(stores) = stores() {
                    super::rotation::sweep(&stores, &handle.current(), &metrics).await;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = rings.changed() => if changed.is_err() { return },
            }
            latest = rings.borrow_and_update().clone();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of the key-ring flags in `argv` (`--encryption-key-secret NAME`,
    /// `--encryption-key-file PATH`); the command line's own parsing is tested in `cli`.
    fn args(argv: &[&str]) -> ValkeySettings {
        let mut settings = ValkeySettings::default();
        for pair in argv.chunks(2) {
            match pair {
                ["--encryption-key-secret", name] => {
                    settings.encryption_key_secret = Some((*name).to_owned());
                }
                ["--encryption-key-file", path] => {
                    settings.encryption_key_file = Some((*path).into());
                }
                other => panic!("unexpected arguments {other:?}"),
            }
        }
        settings
    }

    #[test]
    fn a_secret_needs_run() {
        let err = KeySource::resolve(&args(&["--encryption-key-secret", "mcp-keys"]), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("only works with `run`") && err.contains("mcp-keys"),
            "{err}"
        );
    }

    #[test]
    fn secret_names_are_checked() {
        for bad in ["", "Keys", "-keys", "keys-", "a..b", "keys_1", "a/b"] {
            assert!(check_secret_name(bad).is_err(), "{bad:?}");
        }
        for good in ["keys", "mcp-oauth-keys", "a.b-c", "k1"] {
            assert!(check_secret_name(good).is_ok(), "{good:?}");
        }
        let err = KeySource::resolve(&args(&["--encryption-key-secret", "Keys"]), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a valid Secret name"), "{err}");
    }

    #[test]
    fn a_bad_key_file_stops_start_up_and_none_is_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("ring");
        std::fs::write(&file, "primary: k9\n").unwrap_or_else(|e| panic!("{e}"));
        let path = file.to_string_lossy().into_owned();
        let err = KeySource::resolve(&args(&["--encryption-key-file", &path]), None).err();
        assert!(matches!(err, Some(StoreSetupError::KeyRing(_))), "{err:?}");
        let none = KeySource::resolve(&args(&[]), None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!none.is_configured());
    }
}
