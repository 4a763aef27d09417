//! The query-string parsers of the feed, the likers pages and the image variants on arbitrary
//! query strings.
//!
//! Properties: every accepted limit is within its page bounds; an accepted query written back
//! in canonical form parses to the same query; parameters the API does not know and empty
//! pairs change nothing, wherever they stand; the pair splitter's output rejoined splits the same.

use likes_core::api::{
    FEED_PAGE_MAX, FeedCursor, FeedQuery, ImageSize, LIKERS_PAGE_MAX, LikersQuery, QueryError,
    query_pairs,
};

pub fn run(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let query = query.as_ref();

    let pairs: Vec<(&str, &str)> = query_pairs(query).collect();
    for (key, value) in &pairs {
        assert!(!key.contains('&') && !value.contains('&') && !key.contains('='));
    }
    let rejoined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(query_pairs(&rejoined).collect::<Vec<_>>(), pairs);

    let noisy = [
        format!("fuzz=1&{query}"),
        format!("{query}&fuzz"),
        format!("&{query}&"),
    ];

    let feed = FeedQuery::parse(query);
    for q in &noisy {
        assert_eq!(FeedQuery::parse(q), feed, "{q:?}");
    }
    match &feed {
        Ok(f) => {
            assert!((1..=FEED_PAGE_MAX).contains(&f.limit));
            let canonical = format!(
                "sort={}&limit={}{}",
                f.sort.as_str(),
                f.limit,
                match FeedCursor::encode(f.sort, &f.cursor.script_arg()) {
                    Some(c) => format!("&cursor={c}"),
                    None => String::new(),
                }
            );
            assert_eq!(FeedQuery::parse(&canonical).as_ref(), Ok(f), "{canonical}");
        }
        Err(QueryError::Limit(max)) => assert_eq!(*max, FEED_PAGE_MAX),
        Err(QueryError::Size) => panic!("the feed has no `size`"),
        Err(_) => {}
    }

    let likers = LikersQuery::parse(query);
    for q in &noisy {
        assert_eq!(LikersQuery::parse(q), likers, "{q:?}");
    }
    match likers {
        Ok(l) => {
            assert!((1..=LIKERS_PAGE_MAX).contains(&l.limit));
            let canonical = match likes_core::UserId::new(l.after) {
                Some(after) => format!("limit={}&cursor={after}", l.limit),
                None => {
                    assert_eq!(l.after, 0, "a cursor is a user id or nothing");
                    format!("limit={}", l.limit)
                }
            };
            assert_eq!(LikersQuery::parse(&canonical), Ok(l), "{canonical}");
        }
        Err(e) => assert!(
            matches!(e, QueryError::Limit(LIKERS_PAGE_MAX) | QueryError::Cursor),
            "{e:?}"
        ),
    }

    let size = ImageSize::parse_query(query);
    for q in &noisy {
        assert_eq!(ImageSize::parse_query(q), size, "{q:?}");
    }
    match size {
        Ok(s) => assert_eq!(
            ImageSize::parse_query(&format!("size={}", s.as_str())),
            Ok(s)
        ),
        Err(e) => assert_eq!(e, QueryError::Size),
    }
}
