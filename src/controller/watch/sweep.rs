//! After a re-list, registrations whose resource no longer exists (deleted while the watch was
//! down, so no delete event was seen) are removed. In `run` mode the controllers are the only
//! writers of the registry, so anything in scope that the fresh list lacks is stale.

use crate::controller::config::Scope;
use crate::registry::ServerKey;
use std::collections::HashSet;

/// Keys among `registered` that are in `scope` but not `live`.
pub fn stale<'a>(
    registered: impl IntoIterator<Item = &'a ServerKey>,
    live: &HashSet<ServerKey>,
    scope: &Scope,
) -> Vec<ServerKey> {
    registered
        .into_iter()
        .filter(|k| scope.contains(&k.namespace) && !live.contains(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_keys_in_scope_are_stale() {
        let registered = [
            ServerKey::new("a", "kept"),
            ServerKey::new("a", "gone"),
            ServerKey::new("b", "other-scope"),
        ];
        let live = HashSet::from([ServerKey::new("a", "kept")]);
        assert_eq!(
            stale(&registered, &live, &Scope::Namespace("a".into())),
            vec![ServerKey::new("a", "gone")]
        );
        let mut all = stale(&registered, &live, &Scope::All);
        all.sort();
        assert_eq!(
            all,
            vec![
                ServerKey::new("a", "gone"),
                ServerKey::new("b", "other-scope")
            ]
        );
    }
}
