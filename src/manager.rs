//! Programmatic API.
