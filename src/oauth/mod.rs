//! OAuth 2.1 client engine.
