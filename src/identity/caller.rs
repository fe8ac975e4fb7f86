//! The caller identity shared by every mode.

/// The authenticated caller of a request: tokens are kept per `session` and owned by `user`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub user: String,
    pub session: String,
}

/// User id used in `anonymous` mode.
pub const ANONYMOUS_USER: &str = "anonymous";
/// Session id used in `anonymous` mode.
pub const ANONYMOUS_SESSION: &str = "default";

impl Caller {
    pub fn new(user: impl Into<String>, session: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            session: session.into(),
        }
    }

    /// The single caller of `anonymous` mode.
    pub fn anonymous() -> Self {
        Self::new(ANONYMOUS_USER, ANONYMOUS_SESSION)
    }
}
