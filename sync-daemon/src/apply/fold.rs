//! The pure part of a batch: which events can be stored, and their net effect folded into one
//! final state per key, ready for bulk statements. No I/O.

use std::collections::HashMap;

use likes_core::events::StreamEvent;

/// The net effect of a run of events, one final state per key, ready for bulk statements.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// (post, user, ts) that must end up liked; sorted by (post, user).
    pub likes: Vec<(i64, i64, Option<String>)>,
    /// (post, user) that must end up not liked; sorted.
    pub unlikes: Vec<(i64, i64)>,
    /// (user, name, ts), the last record per user; sorted by user.
    pub users: Vec<(i64, String, Option<String>)>,
    /// Created posts, one per id; sorted by id.
    pub posts: Vec<PostRow>,
    /// Per post, the state-changing like (`true`) / unlike (`false`) operations in stream order,
    /// replayed on the stored recent likers list; sorted by post.
    pub recent_ops: Vec<(i64, Vec<(i64, bool)>)>,
}

/// A post creation as it goes into `posts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRow {
    pub id: i64,
    pub author: i64,
    pub author_name: String,
    pub caption: String,
    pub image: String,
    pub width: i32,
    pub height: i32,
    pub ts: Option<String>,
}

/// Whether every id of `event` fits PostgreSQL's `BIGINT`; those that do not are parked.
pub fn fits(event: &StreamEvent) -> bool {
    let ok = |v: u64| i64::try_from(v).is_ok();
    match event {
        StreamEvent::Like { post, user, .. } | StreamEvent::Unlike { post, user, .. } => {
            ok(post.get()) && ok(user.get())
        }
        StreamEvent::User { user, .. } => ok(user.get()),
        StreamEvent::Post(p) => {
            ok(p.post.get())
                && ok(p.user.get())
                && i32::try_from(p.width).is_ok()
                && i32::try_from(p.height).is_ok()
        }
    }
}

/// Folds events in stream order: for each (post, user) only the last like/unlike counts, which
/// is the state Redis ended in, so like/unlike/like inside one batch leaves one like. Events
/// that do not [`fits`] are ignored (the caller parks them).
pub fn fold<'a>(events: impl IntoIterator<Item = &'a StreamEvent>) -> Folded {
    let mut likes: HashMap<(i64, i64), Option<Option<String>>> = HashMap::new();
    let mut users: HashMap<i64, (String, Option<String>)> = HashMap::new();
    let mut posts: HashMap<i64, PostRow> = HashMap::new();
    let mut recent: HashMap<i64, Vec<(i64, bool)>> = HashMap::new();
    let id = |v: u64| i64::try_from(v).ok();
    for event in events {
        match event {
            StreamEvent::Like { post, user, ts, .. } => {
                if let (Some(p), Some(u)) = (id(post.get()), id(user.get())) {
                    likes.insert((p, u), Some(valid_ts(ts)));
                    recent.entry(p).or_default().push((u, true));
                }
            }
            StreamEvent::Unlike { post, user, .. } => {
                if let (Some(p), Some(u)) = (id(post.get()), id(user.get())) {
                    likes.insert((p, u), None);
                    recent.entry(p).or_default().push((u, false));
                }
            }
            StreamEvent::Post(p) => {
                let dims = (i32::try_from(p.width).ok(), i32::try_from(p.height).ok());
                if let (Some(post), Some(author), (Some(width), Some(height))) =
                    (id(p.post.get()), id(p.user.get()), dims)
                {
                    // post.lua never re-creates an id, so any copy is the same post.
                    posts.entry(post).or_insert_with(|| PostRow {
                        id: post,
                        author,
                        author_name: p.name.clone(),
                        caption: p.caption.clone(),
                        image: p.image.clone(),
                        width,
                        height,
                        ts: valid_ts(&p.ts),
                    });
                }
            }
            StreamEvent::User { user, name, ts } => {
                if let Some(u) = id(user.get()) {
                    users.insert(u, (name.clone(), valid_ts(ts)));
                }
            }
        }
    }
    let mut out = Folded::default();
    for ((post, user), state) in likes {
        match state {
            Some(ts) => out.likes.push((post, user, ts)),
            None => out.unlikes.push((post, user)),
        }
    }
    out.users = users
        .into_iter()
        .map(|(id, (name, ts))| (id, name, ts))
        .collect();
    // A fixed row order makes concurrent transactions lock rows in the same order.
    out.likes.sort_by_key(|&(p, u, _)| (p, u));
    out.unlikes.sort_unstable();
    out.users.sort_by_key(|&(id, _, _)| id);
    out.posts = posts.into_values().collect();
    out.posts.sort_by_key(|p| p.id);
    out.recent_ops = recent.into_iter().collect();
    out.recent_ops.sort_by_key(|&(p, _)| p);
    out
}

/// Replays the like script's recent-likers list operations on `list` (newest first): a like
/// is `LREM` + `LPUSH` + `LTRIM cap`, an unlike is `LREM`. Same input, same list as Redis.
pub fn replay_recent(list: &mut Vec<i64>, ops: &[(i64, bool)], cap: usize) {
    for &(user, on) in ops {
        list.retain(|&u| u != user);
        if on {
            list.insert(0, user);
            list.truncate(cap);
        }
    }
}

/// The timestamp if PostgreSQL will accept it; a malformed one must not wedge the stream, so
/// it becomes `now()` in SQL instead.
fn valid_ts(ts: &str) -> Option<String> {
    humantime::parse_rfc3339_weak(ts.trim_end_matches('Z'))
        .ok()
        .map(|_| ts.to_owned())
}

#[cfg(test)]
mod tests {
    use likes_core::{PostId, UserId};

    use super::*;

    fn like(p: u64, u: u64, on: bool) -> StreamEvent {
        let (post, user) = (
            PostId::new(p).expect("nonzero"),
            UserId::new(u).expect("nonzero"),
        );
        let ts = "2026-11-27T20:52:16.123Z".to_owned();
        if on {
            StreamEvent::Like {
                post,
                user,
                likes: 0,
                ts,
            }
        } else {
            StreamEvent::Unlike {
                post,
                user,
                likes: 0,
                ts,
            }
        }
    }

    #[test]
    fn last_event_per_key_wins() {
        let evs = [
            like(1, 1, true),
            like(1, 1, false),
            like(1, 1, true),
            like(1, 2, true),
            like(1, 2, false),
            like(2, 1, false),
        ];
        let f = fold(&evs);
        let ts = Some("2026-11-27T20:52:16.123Z".to_owned());
        assert_eq!(f.likes, vec![(1, 1, ts)]);
        assert_eq!(f.unlikes, vec![(1, 2), (2, 1)]);
    }

    #[test]
    fn recent_likers_follow_the_like_scripts_list_operations() {
        // cap 2: a like moves the user to the front and trims; an unlike leaves a hole that
        // older (trimmed) likers do not refill.
        let mut list = vec![9];
        replay_recent(&mut list, &[(1, true), (2, true), (1, true)], 2);
        assert_eq!(list, vec![1, 2]);
        replay_recent(&mut list, &[(2, false), (7, false)], 2);
        assert_eq!(list, vec![1]);
    }

    #[test]
    fn the_largest_ids_fit_and_bad_timestamps_are_dropped() {
        // Ids stop at 2^53 − 1 when parsed (likes_core::ids), so every id a stream entry can
        // carry fits PostgreSQL's bigint.
        assert!(PostId::new(u64::MAX).is_none());
        let largest = like(PostId::MAX, UserId::MAX, true);
        assert!(fits(&largest));
        assert_eq!(fold([&largest]).likes.len(), 1);
        assert_eq!(valid_ts("yesterday"), None);
        assert!(valid_ts("2026-11-27T20:52:16.123Z").is_some());
    }

    fn post(id: u64, caption: &str, width: u32) -> StreamEvent {
        StreamEvent::Post(likes_core::events::NewPost {
            post: PostId::new(id).expect("nonzero"),
            user: UserId::new(5).expect("nonzero"),
            name: "ann".into(),
            caption: caption.into(),
            image: "0123456789abcdef0123456789abcdef".into(),
            width,
            height: 10,
            ts: "not a time".into(),
        })
    }

    #[test]
    fn posts_keep_their_first_copy_and_users_their_last_record() {
        let user = |name: &str| StreamEvent::User {
            user: UserId::new(5).expect("nonzero"),
            name: name.into(),
            ts: "2026-11-27T20:52:16.123Z".into(),
        };
        let too_wide = post(3, "too wide", u32::MAX);
        assert!(!fits(&too_wide));
        let evs = [
            post(2, "first", 20),
            user("ann"),
            post(2, "replayed", 20),
            user("anna"),
        ];
        let f = fold(evs.iter().chain([&too_wide]));
        assert_eq!(f.posts.len(), 1, "{:?}", f.posts);
        assert_eq!(
            (
                f.posts[0].id,
                f.posts[0].caption.as_str(),
                f.posts[0].ts.as_deref()
            ),
            (2, "first", None)
        );
        assert_eq!(f.users.len(), 1);
        assert_eq!(f.users[0].1, "anna");
    }
}
