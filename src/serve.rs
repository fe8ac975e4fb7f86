//! The serve subcommand.
