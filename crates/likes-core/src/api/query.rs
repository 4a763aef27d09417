//! The query strings of the edge HTTP API: feed and likers paging with their opaque cursors,
//! and the image `size`, each parsed and validated before anything reaches Redis.

use crate::ids::{PostId, UserId};

/// Default and maximum page size of `GET /api/posts/{id}/likers`.
pub const LIKERS_PAGE_DEFAULT: u32 = 50;
pub const LIKERS_PAGE_MAX: u32 = 200;

/// Default and maximum page size of `GET /api/feed`.
pub const FEED_PAGE_DEFAULT: u32 = 20;
pub const FEED_PAGE_MAX: u32 = 50;

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("`limit` must be an integer from 1 to {0}")]
    Limit(u32),
    #[error("`cursor` is not a cursor this API returned")]
    Cursor,
    #[error("`sort` must be `new` or `top`")]
    Sort,
    #[error("`size` must be `thumb` or `full`")]
    Size,
}

/// Splits `a=1&b=2` into pairs. Values in this API are ids and integers, which never need
/// percent-decoding, so none is done: an encoded value simply fails validation.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// A variant of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSize {
    Thumb,
    Full,
}

impl ImageSize {
    /// Parses `size=thumb|full` from a raw query string (default `full`).
    pub fn parse_query(query: &str) -> Result<Self, QueryError> {
        let mut size = Self::Full;
        for (key, value) in query_pairs(query) {
            if key == "size" {
                size = match value {
                    "thumb" => Self::Thumb,
                    "full" => Self::Full,
                    _ => return Err(QueryError::Size),
                };
            }
        }
        Ok(size)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thumb => "thumb",
            Self::Full => "full",
        }
    }
}

/// Where the API serves a variant of an image.
pub fn image_url(image_id: &str, size: ImageSize) -> String {
    format!("/api/images/{image_id}?size={}", size.as_str())
}

/// The order of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedSort {
    /// Newest first. The cursor is the last post id, so inserts never shift a page.
    New,
    /// Most liked first. Counts move, so a post may move between pages; clients drop repeats.
    Top,
}

impl FeedSort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Top => "top",
        }
    }
}

/// A parsed `GET /api/feed` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub sort: FeedSort,
    pub limit: u32,
    pub cursor: FeedCursor,
}

/// Where a feed page starts. Cursors are opaque to clients: `n<id>` for `new`, `t<o0>.<o1>…`
/// (the offset reached in each shard's index) for `top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedCursor {
    /// From the first post.
    Start,
    /// `new`: posts with ids strictly below this.
    Before(PostId),
    /// `top`: the offset already consumed in each shard's index.
    Offsets(Vec<u32>),
}

impl FeedCursor {
    /// The wire form of a cursor of `sort`, from the script's `next` value (`''` = the end).
    pub fn encode(sort: FeedSort, next: &str) -> Option<String> {
        (!next.is_empty()).then(|| match sort {
            FeedSort::New => format!("n{next}"),
            FeedSort::Top => format!("t{next}"),
        })
    }

    /// The cursor argument of the feed script.
    pub fn script_arg(&self) -> String {
        match self {
            Self::Start => String::new(),
            Self::Before(id) => id.get().to_string(),
            Self::Offsets(offsets) => offsets
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("."),
        }
    }

    fn parse(sort: FeedSort, raw: &str) -> Result<Self, QueryError> {
        match (sort, raw.split_at_checked(1)) {
            (FeedSort::New, Some(("n", id))) => id
                .parse::<u64>()
                .ok()
                .and_then(PostId::new)
                .map(Self::Before)
                .ok_or(QueryError::Cursor),
            (FeedSort::Top, Some(("t", offsets))) => {
                let offsets: Vec<u32> = offsets
                    .split('.')
                    .map(|o| o.parse().map_err(|_| QueryError::Cursor))
                    .collect::<Result<_, _>>()?;
                if offsets.len() == usize::from(crate::keys::SHARDS) {
                    Ok(Self::Offsets(offsets))
                } else {
                    Err(QueryError::Cursor)
                }
            }
            _ => Err(QueryError::Cursor),
        }
    }
}

impl FeedQuery {
    /// Parses `sort`, `limit` and `cursor` from a raw query string; unknown parameters are
    /// ignored. A cursor is only valid with the sort that produced it.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut sort = FeedSort::New;
        let mut limit = FEED_PAGE_DEFAULT;
        let mut cursor = None;
        for (key, value) in query_pairs(query) {
            match key {
                "sort" => {
                    sort = match value {
                        "new" => FeedSort::New,
                        "top" => FeedSort::Top,
                        _ => return Err(QueryError::Sort),
                    }
                }
                "limit" => {
                    limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=FEED_PAGE_MAX).contains(n))
                        .ok_or(QueryError::Limit(FEED_PAGE_MAX))?;
                }
                "cursor" if !value.is_empty() => cursor = Some(value),
                _ => {}
            }
        }
        let cursor = match cursor {
            None => FeedCursor::Start,
            Some(raw) => FeedCursor::parse(sort, raw)?,
        };
        Ok(Self {
            sort,
            limit,
            cursor,
        })
    }
}

/// A page request for likers: ids strictly after `after` (0 = from the start), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikersQuery {
    pub after: u64,
    pub limit: u32,
}

impl LikersQuery {
    /// Parses `limit` and `cursor` from a raw query string; unknown parameters are ignored.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut out = Self {
            after: 0,
            limit: LIKERS_PAGE_DEFAULT,
        };
        for (key, value) in query_pairs(query) {
            match key {
                "limit" => {
                    out.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=LIKERS_PAGE_MAX).contains(n))
                        .ok_or(QueryError::Limit(LIKERS_PAGE_MAX))?;
                }
                "cursor" => {
                    out.after = value
                        .parse::<UserId>()
                        .map_err(|_| QueryError::Cursor)?
                        .get()
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The cursor that continues after `last` (the last user of a full page).
pub fn likers_cursor(last: UserId) -> String {
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_query_round_trips_its_cursors() {
        let q = FeedQuery::parse("").expect("defaults");
        assert_eq!(
            (q.sort, q.limit, q.cursor),
            (FeedSort::New, 20, FeedCursor::Start)
        );
        let next = FeedCursor::encode(FeedSort::New, "42").expect("more");
        let q = FeedQuery::parse(&format!("sort=new&limit=50&cursor={next}")).expect("valid");
        assert_eq!(
            q.cursor,
            FeedCursor::Before(PostId::new(42).expect("nonzero"))
        );
        assert_eq!(q.cursor.script_arg(), "42");
        let offsets = vec!["3"; 16].join(".");
        let next = FeedCursor::encode(FeedSort::Top, &offsets).expect("more");
        let q = FeedQuery::parse(&format!("sort=top&cursor={next}")).expect("valid");
        assert_eq!(q.cursor, FeedCursor::Offsets(vec![3; 16]));
        assert_eq!(q.cursor.script_arg(), offsets);
        assert_eq!(FeedCursor::encode(FeedSort::Top, ""), None);
    }

    #[test]
    fn feed_query_refuses_what_it_did_not_issue() {
        assert_eq!(FeedQuery::parse("sort=old"), Err(QueryError::Sort));
        assert_eq!(FeedQuery::parse("limit=51"), Err(QueryError::Limit(50)));
        // A `new` cursor under `top`, and the reverse, are refused rather than misread.
        assert_eq!(
            FeedQuery::parse("sort=top&cursor=n5"),
            Err(QueryError::Cursor)
        );
        assert_eq!(
            FeedQuery::parse("sort=new&cursor=t1.2"),
            Err(QueryError::Cursor)
        );
        assert_eq!(
            FeedQuery::parse("sort=top&cursor=t1.2"),
            Err(QueryError::Cursor)
        );
        assert_eq!(FeedQuery::parse("cursor=n0"), Err(QueryError::Cursor));
        assert_eq!(FeedQuery::parse("cursor=nx"), Err(QueryError::Cursor));
    }

    #[test]
    fn image_sizes_default_to_full() {
        assert_eq!(ImageSize::parse_query(""), Ok(ImageSize::Full));
        assert_eq!(ImageSize::parse_query("size=thumb"), Ok(ImageSize::Thumb));
        assert_eq!(ImageSize::parse_query("size=huge"), Err(QueryError::Size));
    }

    #[test]
    fn likers_query_defaults_and_limits() {
        assert_eq!(
            LikersQuery::parse(""),
            Ok(LikersQuery {
                after: 0,
                limit: 50
            })
        );
        assert_eq!(
            LikersQuery::parse("limit=200&cursor=u_9"),
            Ok(LikersQuery {
                after: 9,
                limit: 200
            })
        );
        assert_eq!(LikersQuery::parse("limit=0"), Err(QueryError::Limit(200)));
        assert_eq!(LikersQuery::parse("limit=201"), Err(QueryError::Limit(200)));
        assert_eq!(LikersQuery::parse("cursor=zz"), Err(QueryError::Cursor));
        assert_eq!(
            LikersQuery::parse("x=1&limit=5"),
            Ok(LikersQuery { after: 0, limit: 5 })
        );
    }
}
