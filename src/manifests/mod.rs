//! Standalone manifests source.
