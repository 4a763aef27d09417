//! Feed and likers cursors: arbitrary strings offered as cursors, and cursors built from
//! arbitrary positions.
//!
//! Properties: a cursor the API issues parses back to the position it encodes, under its own
//! sort only; an accepted cursor is a valid position (an id in range, one offset per shard)
//! whose script argument holds only digits and dots, and re-encoding it gives a cursor that
//! parses to the same position; a likers cursor round-trips exactly.

use likes_core::api::{FeedCursor, FeedQuery, FeedSort, LikersQuery, likers_cursor};
use likes_core::keys::SHARDS;
use likes_core::{PostId, UserId};

use crate::input::Input;

pub fn run(data: &[u8]) {
    offered(&String::from_utf8_lossy(data));

    let mut input = Input::new(data);
    let id = input.u64() % PostId::MAX + 1;
    let post = PostId::new(id).expect("in range");
    issued(
        FeedSort::New,
        &post.get().to_string(),
        &FeedCursor::Before(post),
    );
    let offsets: Vec<u32> = (0..SHARDS).map(|_| input.u32()).collect();
    let arg = offsets
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    issued(FeedSort::Top, &arg, &FeedCursor::Offsets(offsets));

    let user = UserId::new(id).expect("in range");
    let page = LikersQuery::parse(&format!("cursor={}", likers_cursor(user)));
    assert_eq!(page.map(|q| q.after), Ok(user.get()));
}

/// A cursor built from the script's `next` value `arg`, as the feed component builds it.
fn issued(sort: FeedSort, arg: &str, position: &FeedCursor) {
    let cursor = FeedCursor::encode(sort, arg).expect("a position is a cursor");
    let parsed = feed(sort, &cursor).expect("an issued cursor parses");
    assert_eq!(&parsed, position);
    assert_eq!(parsed.script_arg(), arg);
    let other = match sort {
        FeedSort::New => FeedSort::Top,
        FeedSort::Top => FeedSort::New,
    };
    assert!(
        feed(other, &cursor).is_none(),
        "{cursor} also parsed under the other sort"
    );
}

fn offered(raw: &str) {
    for sort in [FeedSort::New, FeedSort::Top] {
        let Some(cursor) = feed(sort, raw) else {
            continue;
        };
        match &cursor {
            FeedCursor::Start => {
                assert!(
                    raw.is_empty() || raw.contains('&'),
                    "{raw:?} read as no cursor"
                )
            }
            FeedCursor::Before(id) => assert!((1..=PostId::MAX).contains(&id.get())),
            FeedCursor::Offsets(o) => assert_eq!(o.len(), usize::from(SHARDS)),
        }
        let arg = cursor.script_arg();
        assert!(
            arg.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
            "{arg:?}"
        );
        if let Some(again) = FeedCursor::encode(sort, &arg) {
            assert_eq!(feed(sort, &again), Some(cursor), "{raw:?} → {again:?}");
        }
    }
    if let Ok(q) = LikersQuery::parse(&format!("cursor={raw}"))
        && !raw.contains('&')
        && !raw.is_empty()
    {
        let user = UserId::new(q.after).expect("an accepted cursor is a user id");
        assert_eq!(likers_cursor(user), raw, "likers cursors are canonical");
    }
}

fn feed(sort: FeedSort, cursor: &str) -> Option<FeedCursor> {
    FeedQuery::parse(&format!("sort={}&cursor={cursor}", sort.as_str()))
        .ok()
        .map(|q| q.cursor)
}
