//! Which sessions hold entries of which user, so `delete_by_user` visits only those sessions.
//!
//! Each `(user, session)` pair carries the number of that user's entries in that session: a
//! session can hold entries of several users (in principle), and a plain set could not tell when
//! the last of one user's entries in a session is gone.
//!
//! Consistency rule (kept by the token store): the count of `(user, session)` changes only while
//! the caller holds the write lock of `session` in the sessions map. So whenever that session is
//! unlocked its count equals the number of the user's entries in it. Lock order: a sessions-map
//! shard may be held while this index is locked, never the other way round.

use dashmap::DashMap;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(super) struct UserIndex {
    users: DashMap<String, HashMap<String, usize>>,
}

impl UserIndex {
    /// One more entry of `user` in `session`. Allocates only for a new user or pair.
    pub(super) fn add(&self, user: &str, session: &str) {
        match self.users.get_mut(user) {
            Some(mut sessions) => match sessions.get_mut(session) {
                Some(n) => *n += 1,
                None => {
                    sessions.insert(session.to_owned(), 1);
                }
            },
            // No guard is held in this arm (the scrutinee is `None`), so taking the entry lock
            // of the same shard cannot deadlock.
            None => {
                *self
                    .users
                    .entry(user.to_owned())
                    .or_default()
                    .entry(session.to_owned())
                    .or_insert(0) += 1;
            }
        }
    }

    /// `n` fewer entries of `user` in `session`; forgets the pair (and the user) at zero.
    pub(super) fn sub(&self, user: &str, session: &str, n: usize) {
        if n == 0 {
            return;
        }
        // One locked step: adjust, and drop the user when nothing is left.
        self.users.remove_if_mut(user, |_, sessions| {
            if let Some(count) = sessions.get_mut(session) {
                if *count > n {
                    *count -= n;
                } else {
                    sessions.remove(session);
                }
            }
            sessions.is_empty()
        });
    }

    /// Sessions currently holding entries of `user` (a snapshot; no lock is kept).
    pub(super) fn sessions_of(&self, user: &str) -> Vec<String> {
        self.users
            .get(user)
            .map(|sessions| sessions.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every `(user, session) → count`, for consistency checks in tests.
    #[cfg(test)]
    pub(super) fn snapshot(&self) -> std::collections::BTreeMap<(String, String), usize> {
        self.users
            .iter()
            .flat_map(|u| {
                u.value()
                    .iter()
                    .map(|(s, n)| ((u.key().clone(), s.clone()), *n))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_pair_and_forgets_at_zero() {
        let idx = UserIndex::default();
        idx.add("u", "s1");
        idx.add("u", "s1");
        idx.add("u", "s2");
        idx.add("v", "s1");
        let mut s = idx.sessions_of("u");
        s.sort();
        assert_eq!(s, vec!["s1".to_owned(), "s2".to_owned()]);

        idx.sub("u", "s1", 1);
        assert_eq!(idx.snapshot().get(&("u".into(), "s1".into())), Some(&1));
        idx.sub("u", "s1", 1);
        assert_eq!(idx.sessions_of("u"), vec!["s2".to_owned()]);
        idx.sub("u", "s2", 5);
        assert!(idx.sessions_of("u").is_empty());
        assert!(!idx.snapshot().keys().any(|(u, _)| u == "u"));
        assert_eq!(idx.sessions_of("v"), vec!["s1".to_owned()]);
    }

    #[test]
    fn sub_of_unknown_pair_changes_nothing() {
        let idx = UserIndex::default();
        idx.add("u", "s1");
        idx.sub("u", "s9", 1);
        idx.sub("nobody", "s1", 1);
        idx.sub("u", "s1", 0);
        assert_eq!(idx.sessions_of("u"), vec!["s1".to_owned()]);
    }
}
