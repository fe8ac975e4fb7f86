//! Loading encryption key rings from files and from directories laid out like a mounted
//! Kubernetes Secret, every way that can fail (fail closed, with the path and key id named and
//! no key material in the message), and a rotation across re-loaded rings.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_oauth_operator::crypto::{DecryptError, KeyRing, KeyRingError, aad, envelope_key_id};

/// Base64 of a distinct 32-byte test key.
fn key(n: u8) -> String {
    STANDARD.encode([n; 32].map(|b| b.wrapping_mul(37).wrapping_add(11)))
}

/// Base64 of every test key this file uses, to check messages against.
fn all_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..=9).map(key).collect();
    keys.extend([16usize, 33].map(|len| STANDARD.encode(vec![0x5a; len])));
    keys
}

/// The error's full message (with its sources) names `path` and quotes no key.
fn assert_clean_message(err: &KeyRingError, path: &Path) {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    assert!(
        message.contains(&path.display().to_string()),
        "message does not name {}: {message}",
        path.display()
    );
    for key in all_keys() {
        assert!(!message.contains(&key), "message quotes a key: {message}");
        assert!(
            !message.contains(key.trim_end_matches('=')),
            "message quotes a key: {message}"
        );
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    path
}

/// A directory as the kubelet mounts a Secret: the data in a timestamped `..` directory, a
/// `..data` symlink to it, and one symlink per entry through `..data`.
fn mounted_secret(entries: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_05_09_12_00_00.123456789");
    fs::create_dir(&data).unwrap();
    for (name, value) in entries {
        fs::write(data.join(name), value).unwrap();
        symlink(Path::new("..data").join(name), dir.path().join(name)).unwrap();
    }
    symlink("..2026_05_09_12_00_00.123456789", dir.path().join("..data")).unwrap();
    dir
}

#[test]
fn single_key_file_as_openssl_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "key", &format!("{}\n", key(1)));
    let ring = KeyRing::load(&path).unwrap();
    assert_eq!(ring.primary_id(), "default");
    assert_eq!(ring.key_ids(), ["default"]);
    let envelope = ring.encrypt(b"v", b"ctx");
    assert_eq!(envelope_key_id(&envelope), Ok("default"));
}

#[test]
fn yaml_ring_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "keys.yaml",
        &format!(
            "# rotated 2026-05\nprimary: k2\nk1: {}\nk2: {}\n",
            key(1),
            key(2)
        ),
    );
    let ring = KeyRing::load(&path).unwrap();
    assert_eq!(ring.primary_id(), "k2");
    assert_eq!(ring.key_ids(), ["k1", "k2"]);
    assert!(ring.contains("k1") && !ring.contains("k3"));
}

#[test]
fn mounted_secret_directory_ignores_kubernetes_entries() {
    let dir = mounted_secret(&[
        ("primary", "k2"),
        ("k1", &key(1)),
        ("k2", &format!("{}\n", key(2))),
    ]);
    // Garbage under `..` names must be ignored, not parsed as keys.
    fs::write(dir.path().join("..stray"), "not a key").unwrap();
    let ring = KeyRing::load(dir.path()).unwrap();
    assert_eq!(ring.primary_id(), "k2");
    assert_eq!(ring.key_ids(), ["k1", "k2"]);
}

#[test]
fn plain_directory_with_one_key_needs_no_primary() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "2026-05", &key(3));
    let ring = KeyRing::load(dir.path()).unwrap();
    assert_eq!(ring.primary_id(), "2026-05");
}

#[test]
fn file_directory_and_entries_forms_open_each_others_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ring.yaml",
        &format!("primary: k1\nk1: {}\n", key(1)),
    );
    let secret = mounted_secret(&[("k1", &key(1))]);
    let from_file = KeyRing::load(&file).unwrap();
    let from_dir = KeyRing::load(secret.path()).unwrap();
    let from_entries = KeyRing::from_entries([
        ("primary".to_owned(), b"k1".to_vec()),
        ("k1".to_owned(), key(1).into_bytes()),
    ])
    .unwrap();

    let ctx = aad(b"mcpoauth:oauth:token:s1", Some(b"https://idp|openid"));
    let envelope = from_file.encrypt(b"refresh-token", &ctx);
    for ring in [&from_dir, &from_entries] {
        let opened = ring.decrypt(&envelope, &ctx).unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"refresh-token");
        assert!(!opened.needs_rewrap);
    }
}

#[test]
fn rotation_across_reloaded_rings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.yaml");
    let ctx = aad(b"mcpoauth:oauth:state:abc", None);

    fs::write(&path, format!("k1: {}\n", key(1))).unwrap();
    let before = KeyRing::load(&path).unwrap();
    let old_a = before.encrypt(b"a", &ctx);
    let old_b = before.encrypt(b"b", &ctx);

    // Step 1: add k2 as primary. Old values open and are flagged for re-encryption.
    fs::write(
        &path,
        format!("primary: k2\nk1: {}\nk2: {}\n", key(1), key(2)),
    )
    .unwrap();
    let during = KeyRing::load(&path).unwrap();
    let opened = during.decrypt(&old_a, &ctx).unwrap();
    assert!(opened.needs_rewrap);
    assert_eq!(opened.key_id, "k1");
    let new_a = during.encrypt(&opened.plaintext, &ctx);
    assert_eq!(envelope_key_id(&new_a), Ok("k2"));

    // Step 2: remove k1. Re-encrypted values open; one that was missed is reported by id.
    fs::write(&path, format!("k2: {}\n", key(2))).unwrap();
    let after = KeyRing::load(&path).unwrap();
    assert_eq!(
        after.decrypt(&new_a, &ctx).unwrap().plaintext.as_slice(),
        b"a"
    );
    let err = after.decrypt(&old_b, &ctx).unwrap_err();
    assert_eq!(err, DecryptError::UnknownKeyId("k1".into()));
    assert_eq!(envelope_key_id(&old_b), Ok("k1"));
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    for contents in ["", "\n  \n"] {
        let path = write(dir.path(), "key", contents);
        let err = KeyRing::load(&path).unwrap_err();
        assert!(matches!(err.root(), KeyRingError::Empty), "{err}");
        assert_clean_message(&err, &path);
    }
}

#[test]
fn empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = KeyRing::load(dir.path()).unwrap_err();
    assert!(matches!(err.root(), KeyRingError::Empty), "{err}");
    assert_clean_message(&err, dir.path());
}

#[test]
fn bad_base64() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "key", &format!("{}==", key(4)));
    let err = KeyRing::load(&path).unwrap_err();
    assert!(
        matches!(err.root(), KeyRingError::InvalidBase64 { id } if id == "default"),
        "{err}"
    );
    assert_clean_message(&err, &path);

    let secret = mounted_secret(&[("k1", &format!("{}%", key(5)))]);
    let err = KeyRing::load(secret.path()).unwrap_err();
    assert!(
        matches!(err.root(), KeyRingError::InvalidBase64 { id } if id == "k1"),
        "{err}"
    );
    assert_clean_message(&err, secret.path());
}

#[test]
fn keys_of_the_wrong_length_name_the_id() {
    for len in [16usize, 33] {
        let short = STANDARD.encode(vec![0x5a; len]);
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "key", &short);
        let err = KeyRing::load(&path).unwrap_err();
        assert!(
            matches!(err.root(), KeyRingError::WrongLength { id, len: l } if id == "default" && *l == len),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{len} bytes")), "{err}");
        assert_clean_message(&err, &path);

        let secret = mounted_secret(&[("primary", "k2"), ("k1", &key(1)), ("k2", &short)]);
        let err = KeyRing::load(secret.path()).unwrap_err();
        assert!(
            matches!(err.root(), KeyRingError::WrongLength { id, len: l } if id == "k2" && *l == len),
            "{err}"
        );
        assert!(err.to_string().contains("\"k2\""), "{err}");
        assert_clean_message(&err, secret.path());
    }
}

#[test]
fn primary_naming_a_missing_id() {
    let secret = mounted_secret(&[("primary", "k3"), ("k1", &key(1)), ("k2", &key(2))]);
    let err = KeyRing::load(secret.path()).unwrap_err();
    assert!(
        matches!(err.root(), KeyRingError::PrimaryNotFound { id } if id == "k3"),
        "{err}"
    );
    assert_clean_message(&err, secret.path());
}

#[test]
fn several_keys_without_primary() {
    let secret = mounted_secret(&[("k1", &key(1)), ("k2", &key(2))]);
    let err = KeyRing::load(secret.path()).unwrap_err();
    assert!(matches!(err.root(), KeyRingError::NoPrimary), "{err}");
    assert_clean_message(&err, secret.path());

    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ring.yaml",
        &format!("k1: {}\nk2: {}\n", key(1), key(2)),
    );
    let err = KeyRing::load(&path).unwrap_err();
    assert!(matches!(err.root(), KeyRingError::NoPrimary), "{err}");
    assert_clean_message(&err, &path);
}

#[test]
fn invalid_key_id_characters() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "k@1", &key(1));
    let err = KeyRing::load(dir.path()).unwrap_err();
    assert!(
        matches!(err.root(), KeyRingError::InvalidKeyId { id } if id == "k@1"),
        "{err}"
    );
    assert_clean_message(&err, dir.path());

    let path = write(
        dir.path(),
        "ring.yaml",
        &format!("primary: \"my key\"\n\"my key\": {}\n", key(1)),
    );
    let err = KeyRing::load(&path).unwrap_err();
    assert!(
        matches!(err.root(), KeyRingError::InvalidKeyId { id } if id == "my key"),
        "{err}"
    );
    assert_clean_message(&err, &path);
}

#[test]
fn malformed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ring.yaml",
        &format!("- {}\n- {}\n", key(1), key(2)),
    );
    let err = KeyRing::load(&path).unwrap_err();
    assert!(
        matches!(err.root(), KeyRingError::Malformed { .. }),
        "{err}"
    );
    assert_clean_message(&err, &path);
}

#[test]
fn missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist");
    let err = KeyRing::load(&path).unwrap_err();
    assert!(
        matches!(&err, KeyRingError::Io { path: p, source } if *p == path && source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    assert_clean_message(&err, &path);
}

#[test]
fn unreadable_entry_in_a_directory_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "k1", &key(1));
    let dangling = dir.path().join("k2");
    symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let err = KeyRing::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, KeyRingError::Io { path, .. } if *path == dangling),
        "{err}"
    );
    assert_clean_message(&err, &dangling);
}

#[test]
fn unexpected_subdirectory_is_an_error_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "k1", &key(1));
    fs::create_dir(dir.path().join("nested")).unwrap();
    let err = KeyRing::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, KeyRingError::Io { path, .. } if path.ends_with("nested")),
        "{err}"
    );
}

#[test]
fn debug_of_a_loaded_ring_shows_ids_only() {
    let secret = mounted_secret(&[("primary", "k2"), ("k1", &key(1)), ("k2", &key(2))]);
    let ring = KeyRing::load(secret.path()).unwrap();
    let debug = format!("{ring:?}");
    assert!(
        debug.contains("\"k1\"") && debug.contains("\"k2\""),
        "{debug}"
    );
    for n in [1u8, 2] {
        let bytes = STANDARD.decode(key(n)).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!debug.contains(&key(n)), "{debug}");
        assert!(!debug.to_lowercase().contains(&hex), "{debug}");
    }
}

#[test]
fn the_documented_yaml_ring_example_loads() {
    let docs = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/encryption.md"))
        .unwrap();
    let start = docs.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + docs[start..].find("```").unwrap();
    let ring = KeyRing::parse(&docs[start..end]).unwrap();
    assert_eq!(ring.primary_id(), "2026-05");
    assert_eq!(ring.key_ids(), ["2026-01", "2026-05"]);
}
