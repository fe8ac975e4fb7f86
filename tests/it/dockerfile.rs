//! The Dockerfile, checked without a Docker daemon (none is available where CI runs): every
//! path it copies exists, the runtime stage is non-root with CA certificates, and its
//! dependency-caching stage (the manifest with stub sources) is a valid Cargo project — the step
//! that silently stops caching when a new bench or binary target is added to `Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile")
}

/// Instructions with their continuation lines joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn copied_paths_exist_and_the_runtime_is_minimal_and_non_root() {
    let text = dockerfile();
    let instrs = instructions(&text);
    let copies: Vec<&String> = instrs
        .iter()
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from="))
        .collect();
    assert!(copies.len() >= 3, "{instrs:?}");
    for copy in copies {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(
                root().join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
        }
    }
    let last_from = instrs
        .iter()
        .rev()
        .find(|i| i.starts_with("FROM "))
        .expect("a runtime stage");
    assert!(
        last_from.contains("distroless/cc") && last_from.contains("nonroot"),
        "runtime image: {last_from}"
    );
    assert!(instrs.iter().any(|i| i == "USER 65532:65532"));
    assert!(instrs.iter().any(|i| i.starts_with("CMD [\"run\"]")));
}

#[test]
fn the_dependency_stage_is_a_valid_cargo_project() {
    let instrs = instructions(&dockerfile());
    let stub = instrs
        .iter()
        .find(|i| i.starts_with("RUN mkdir -p src"))
        .expect("the dependency-caching RUN");
    // Everything before the build itself: the stub sources.
    let script = stub
        .trim_start_matches("RUN ")
        .split("&& cargo build")
        .next()
        .expect("stub part");
    let dir = tempfile::tempdir().expect("tempdir");
    // What the build stage copies before the stub step (`COPY <files…> <dest>`).
    for copy in instrs
        .iter()
        .take_while(|i| !i.starts_with("RUN mkdir -p src"))
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from"))
    {
        let words: Vec<&str> = copy.split_whitespace().skip(1).collect();
        let (dest, sources) = words.split_last().expect("COPY has a destination");
        for f in sources {
            let target = if dest.ends_with('/') {
                dir.path()
                    .join(dest)
                    .join(Path::new(f).file_name().expect("a file name"))
            } else {
                dir.path().join(dest)
            };
            std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
            std::fs::copy(root().join(f), &target).expect("copy manifest");
        }
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_valid_project(dir.path());
}

fn assert_valid_project(dir: &Path) {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--locked",
            "--offline",
        ])
        .current_dir(dir)
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "the Dockerfile's dependency stage is not a valid Cargo project:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `cargo build` fails on a declared target whose source is missing; `cargo metadata` just
    // leaves it out. So every `[[bin]]` / `[[bench]]` of Cargo.toml must be among its targets.
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let package = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "mcp-oauth-operator")
        .expect("the operator's package");
    let targets: Vec<&str> = package["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let mut declared = Vec::new();
    let mut lines = manifest.lines();
    while let Some(line) = lines.next() {
        if matches!(line.trim(), "[[bin]]" | "[[bench]]")
            && let Some(name) = lines.next().and_then(|l| l.trim().strip_prefix("name = "))
        {
            declared.push(name.trim_matches('"').to_owned());
        }
    }
    assert!(declared.len() >= 2, "{declared:?}");
    for name in &declared {
        assert!(
            targets.contains(&name.as_str()),
            "the Dockerfile's dependency stage has no stub source for target `{name}`"
        );
    }
}
