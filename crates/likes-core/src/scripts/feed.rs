//! Reading the feed with the [`FEED`](super::FEED) script: one call per Redis node, merged here.
//!
//! A page reads all [`SHARDS`](keys::SHARDS) shard indexes. On one Redis the first call
//! reaches them all. On a cluster a call reaches the indexes of the node serving its first key
//! and names the others, which the next call sends on to their node, so a page costs one call
//! per node. Each node returns its own best candidates in page order; [`FeedRead::finish`]
//! merges them by the same order, which makes the page, and its cursor, what one Redis holding
//! every shard would have returned.

use std::cmp::Ordering;

use crate::api::{self, FeedCursor, FeedSort};
use crate::ids::{PostId, UserId};
use crate::keys::{self, Shard};

/// What to read: a feed page, or a single post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedCall {
    Page(api::FeedQuery),
    One(PostId),
}

impl FeedCall {
    /// Every index the read needs: each shard's `new` or `top` index in shard order (the order
    /// of a `top` cursor's offsets), or the one post's shard index.
    pub fn indexes(&self) -> Vec<String> {
        match self {
            Self::Page(q) => Shard::all()
                .map(|s| match q.sort {
                    FeedSort::New => s.new_index(),
                    FeedSort::Top => s.top(),
                })
                .collect(),
            Self::One(post) => vec![Shard::of(*post).new_index()],
        }
    }

    /// Starts reading for `viewer` (`None` = anonymous).
    pub fn start(&self, viewer: Option<UserId>) -> FeedRead {
        let indexes = self.indexes();
        FeedRead {
            pending: (0..indexes.len()).collect(),
            indexes,
            call: self.clone(),
            viewer,
            candidates: Vec::new(),
            more: false,
        }
    }

    fn limit(&self) -> usize {
        match self {
            Self::Page(q) => q.limit as usize,
            Self::One(_) => 1,
        }
    }
}

/// A post as the feed script returns it: recent likers are ids, to be named with one `HMGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPost {
    pub id: PostId,
    pub author: api::User,
    pub caption: String,
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub created_at: String,
    pub likes: u64,
    pub liked: bool,
    pub recent: Vec<UserId>,
}

impl FeedPost {
    /// The post as clients see it; `names` resolves recent likers (a liker whose name is
    /// missing is skipped). `liked_by_me` is `false` for an anonymous caller.
    pub fn into_post(self, names: &dyn Fn(UserId) -> Option<String>) -> api::Post {
        api::Post {
            id: self.id,
            author: self.author,
            caption: self.caption,
            image: api::PostImage::new(self.image, self.width, self.height),
            likes: self.likes,
            liked_by_me: Some(self.liked),
            recent_likers: self.recent.into_iter().filter_map(names).collect(),
            created_at: self.created_at,
        }
    }
}

/// A finished read: the posts and the next cursor's value (see [`api::FeedCursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedReply {
    pub next: String,
    pub posts: Vec<FeedPost>,
}

impl FeedReply {
    /// Every distinct user id whose name the page needs.
    pub fn recent_likers(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self
            .posts
            .iter()
            .flat_map(|p| p.recent.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Why a feed read failed. Neither comes from user input: a malformed reply is a script/caller
/// version mismatch, and unreached indexes mean the cluster is moving their slots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("feed script reply is malformed at item {0}")]
    Malformed(usize),
    #[error("no Redis node served the indexes {0:?} (slots moving?)")]
    Unreached(Vec<String>),
}

/// One index entry a node offered for the page, in that node's page order.
#[derive(Debug, Clone)]
struct Candidate {
    /// The index it came from (a position in [`FeedCall::indexes`]).
    index: usize,
    id: PostId,
    /// The member as Redis orders it among equal scores (text, descending).
    member: String,
    score: i64,
    /// `None` for an index entry without a record (a post being rehydrated): it takes its
    /// place in the order, so cursors stay exact, but is not shown.
    post: Option<FeedPost>,
}

/// A feed read in progress: call [`next_call`](Self::next_call) and [`absorb`](Self::absorb)
/// its reply until there is no next call, then [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct FeedRead {
    call: FeedCall,
    viewer: Option<UserId>,
    indexes: Vec<String>,
    /// Positions of the indexes no call has reached yet.
    pending: Vec<usize>,
    candidates: Vec<Candidate>,
    more: bool,
}

impl FeedRead {
    /// The next script call's `KEYS` and `ARGV`, or `None` once every index was reached.
    pub fn next_call(&self) -> Option<([String; 1], Vec<String>)> {
        let first = *self.pending.first()?;
        let (mode, limit, cursor) = match &self.call {
            FeedCall::Page(q) => (q.sort.as_str(), q.limit, self.cursor_arg(&q.cursor)),
            FeedCall::One(post) => ("one", 1, post.get().to_string()),
        };
        let mut args = vec![
            mode.to_owned(),
            limit.to_string(),
            self.viewer.map_or(0, UserId::get).to_string(),
            api::RECENT_LIKERS_SHOWN.to_string(),
            cursor,
            keys::post_key::RECORD.to_owned(),
            keys::post_key::LIKERS.to_owned(),
            keys::post_key::RECENT.to_owned(),
        ];
        args.extend(self.pending.iter().map(|&i| self.indexes[i].clone()));
        Some(([self.indexes[first].clone()], args))
    }

    /// The cursor argument for the pending indexes: an id bound for `new`, their offsets for
    /// `top`.
    fn cursor_arg(&self, cursor: &FeedCursor) -> String {
        match cursor {
            FeedCursor::Start => match &self.call {
                FeedCall::Page(q) if q.sort == FeedSort::New => "0".to_owned(),
                _ => String::new(),
            },
            FeedCursor::Before(id) => id.get().to_string(),
            FeedCursor::Offsets(offsets) => self
                .pending
                .iter()
                .map(|&i| offsets.get(i).copied().unwrap_or(0).to_string())
                .collect::<Vec<_>>()
                .join("."),
        }
    }

    /// Takes the reply to the last [`next_call`](Self::next_call) (`None` items are Redis
    /// nils). A reply that reached none of the indexes it was sent is an error, so a read
    /// always ends.
    pub fn absorb(&mut self, items: &[Option<String>]) -> Result<(), FeedError> {
        let mut r = Reader { items, at: 0 };
        let sent = std::mem::take(&mut self.pending);
        let at_sent = |r: &Reader<'_>, position: u64| {
            usize::try_from(position)
                .ok()
                .and_then(|p| p.checked_sub(1))
                .and_then(|p| sent.get(p).copied())
                .ok_or(FeedError::Malformed(r.at - 1))
        };
        self.more |= r.num()? == 1;
        for _ in 0..r.num()? {
            let position = r.num()?;
            self.pending.push(at_sent(&r, position)?);
        }
        if self.pending.len() == sent.len() {
            return Err(FeedError::Unreached(
                sent.iter().map(|&i| self.indexes[i].clone()).collect(),
            ));
        }
        for _ in 0..r.num()? {
            let position = r.num()?;
            let index = at_sent(&r, position)?;
            let member = r.text()?;
            let id = PostId::new(member.parse().map_err(|_| FeedError::Malformed(r.at - 1))?)
                .ok_or(FeedError::Malformed(r.at - 1))?;
            let score = r.signed()?;
            let post = match r.num()? {
                0 => None,
                _ => Some(r.post(id)?),
            };
            self.candidates.push(Candidate {
                index,
                id,
                member,
                score,
                post,
            });
        }
        Ok(())
    }

    /// Merges the nodes' candidates into the page. Each node sent its first `limit` candidates
    /// in page order, so the first `limit` of the merge are exactly the page's.
    pub fn finish(mut self) -> Result<FeedReply, FeedError> {
        if !self.pending.is_empty() {
            return Err(FeedError::Unreached(
                self.pending
                    .iter()
                    .map(|&i| self.indexes[i].clone())
                    .collect(),
            ));
        }
        let limit = self.call.limit();
        let sort = match &self.call {
            FeedCall::Page(q) => Some(q.sort),
            FeedCall::One(_) => None,
        };
        // Stable, and each node's list is already in this order: the merge keeps it.
        self.candidates.sort_by(|a, b| page_order(sort, a, b));
        let more = self.more || self.candidates.len() > limit;
        self.candidates.truncate(limit);
        let next = match (&self.call, more) {
            (FeedCall::Page(q), true) => match q.sort {
                FeedSort::New => self
                    .candidates
                    .last()
                    .map(|c| c.id.get().to_string())
                    .unwrap_or_default(),
                FeedSort::Top => {
                    let mut offsets: Vec<u32> = match &q.cursor {
                        FeedCursor::Offsets(o) => o.clone(),
                        _ => Vec::new(),
                    };
                    offsets.resize(self.indexes.len(), 0);
                    for c in &self.candidates {
                        offsets[c.index] = offsets[c.index].saturating_add(1);
                    }
                    offsets
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".")
                }
            },
            _ => String::new(),
        };
        let posts = self.candidates.into_iter().filter_map(|c| c.post).collect();
        Ok(FeedReply { next, posts })
    }

    /// Runs the whole read with `eval` (one script call: `KEYS`, `ARGV` → its flat reply).
    pub fn run<E>(
        mut self,
        mut eval: impl FnMut(&[String; 1], &[String]) -> Result<Vec<Option<String>>, E>,
    ) -> Result<Result<FeedReply, FeedError>, E> {
        while let Some((keys, args)) = self.next_call() {
            let items = eval(&keys, &args)?;
            if let Err(e) = self.absorb(&items) {
                return Ok(Err(e));
            }
        }
        Ok(self.finish())
    }
}

/// `new`: ids descending. `top`: score descending, then member text descending, as each
/// shard's `ZREVRANGE` orders them.
fn page_order(sort: Option<FeedSort>, a: &Candidate, b: &Candidate) -> Ordering {
    match sort {
        Some(FeedSort::Top) => b
            .score
            .cmp(&a.score)
            .then_with(|| b.member.as_bytes().cmp(a.member.as_bytes())),
        _ => b.id.cmp(&a.id),
    }
}

struct Reader<'a> {
    items: &'a [Option<String>],
    at: usize,
}

impl Reader<'_> {
    fn text(&mut self) -> Result<String, FeedError> {
        let item = self
            .items
            .get(self.at)
            .ok_or(FeedError::Malformed(self.at))?;
        self.at += 1;
        Ok(item.clone().unwrap_or_default())
    }

    fn num(&mut self) -> Result<u64, FeedError> {
        let at = self.at;
        self.text()?.parse().map_err(|_| FeedError::Malformed(at))
    }

    fn signed(&mut self) -> Result<i64, FeedError> {
        let at = self.at;
        self.text()?.parse().map_err(|_| FeedError::Malformed(at))
    }

    fn small(&mut self) -> Result<u32, FeedError> {
        let at = self.at;
        u32::try_from(self.num()?).map_err(|_| FeedError::Malformed(at))
    }

    fn id<T>(&mut self, new: fn(u64) -> Option<T>) -> Result<T, FeedError> {
        let at = self.at;
        new(self.num()?).ok_or(FeedError::Malformed(at))
    }

    fn post(&mut self, id: PostId) -> Result<FeedPost, FeedError> {
        let author = api::User {
            id: self.id(UserId::new)?,
            name: self.text()?,
        };
        let caption = self.text()?;
        let image = self.text()?;
        let width = self.small()?;
        let height = self.small()?;
        let created_at = self.text()?;
        let likes = self.num()?;
        let liked = self.num()? == 1;
        let mut recent = Vec::new();
        for _ in 0..self.num()? {
            recent.push(self.id(UserId::new)?);
        }
        Ok(FeedPost {
            id,
            author,
            caption,
            image,
            width,
            height,
            created_at,
            likes,
            liked,
            recent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> FeedCall {
        FeedCall::Page(api::FeedQuery::parse(q).expect("valid query"))
    }

    /// The reply a node holding `reached` (positions in the call) would give in `new` mode for
    /// posts with no records, candidates given as (position, id).
    fn reply(more: bool, unreached: &[u64], candidates: &[(u64, u64, i64)]) -> Vec<Option<String>> {
        let mut out = vec![u64::from(more).to_string(), unreached.len().to_string()];
        out.extend(unreached.iter().map(u64::to_string));
        out.push(candidates.len().to_string());
        for (pos, id, score) in candidates {
            out.extend([
                pos.to_string(),
                id.to_string(),
                score.to_string(),
                "0".into(),
            ]);
        }
        out.into_iter().map(Some).collect()
    }

    #[test]
    fn one_redis_is_one_call() {
        let mut read = query("sort=new&limit=2").start(None);
        let (keys, args) = read.next_call().expect("a call");
        assert_eq!(keys[0], Shard(0).new_index());
        assert_eq!(args.len(), 8 + usize::from(keys::SHARDS));
        assert_eq!(args[4], "0");
        read.absorb(&reply(true, &[], &[(3, 19, 19), (1, 16, 16)]))
            .expect("reply");
        assert!(read.next_call().is_none());
        assert_eq!(read.finish().expect("page").next, "16");
    }

    #[test]
    fn the_next_call_goes_to_the_first_unreached_index_with_its_offsets() {
        let mut cursor: Vec<String> = (0..keys::SHARDS).map(|s| s.to_string()).collect();
        cursor[5] = "40".into();
        let mut read = query(&format!("sort=top&limit=3&cursor=t{}", cursor.join("."))).start(None);
        read.absorb(&reply(false, &[6, 7, 16], &[])).expect("reply");
        let (keys, args) = read.next_call().expect("a second call");
        assert_eq!(keys[0], Shard(5).top());
        assert_eq!(args[4], "40.6.15");
        assert_eq!(
            &args[8..],
            [Shard(5).top(), Shard(6).top(), Shard(15).top()]
        );
    }

    #[test]
    fn two_nodes_merge_into_the_page_one_redis_gives() {
        // Node A holds shards 0..8, node B 8..16. `new`, limit 3: A offers 30, 20, 12 and has
        // more; B offers 25, 11.
        let mut read = query("sort=new&limit=3").start(None);
        let b: Vec<u64> = (9..=16).collect();
        read.absorb(&reply(true, &b, &[(1, 30, 30), (2, 20, 20), (3, 12, 12)]))
            .expect("A");
        read.absorb(&reply(false, &[], &[(1, 25, 25), (4, 11, 11)]))
            .expect("B");
        let page = read.finish().expect("page");
        assert_eq!(page.next, "20");
    }

    #[test]
    fn top_offsets_count_what_each_shard_gave_including_hidden_entries() {
        let mut read = query("sort=top&limit=3").start(None);
        let b: Vec<u64> = (9..=16).collect();
        // A: shard 0 gives (9 likes, id 4) and (5, 2); B (positions relative to its call):
        // shard 8 gives (7, 9), shard 9 gives (7, 10).
        read.absorb(&reply(false, &b, &[(1, 4, 9), (1, 2, 5)]))
            .expect("A");
        read.absorb(&reply(false, &[], &[(2, 10, 7), (1, 9, 7)]))
            .expect("B");
        let page = read.finish().expect("page");
        let mut expected = vec!["0"; 16];
        expected[0] = "1";
        expected[8] = "1";
        expected[9] = "1";
        // Ties on score go to the larger member text, as ZREVRANGE orders them: "9" > "10".
        assert_eq!(page.next, expected.join("."));
    }

    #[test]
    fn a_reply_that_reaches_nothing_ends_the_read() {
        let mut read = query("sort=new").start(None);
        let all: Vec<u64> = (1..=16).collect();
        assert!(matches!(
            read.absorb(&reply(false, &all, &[])),
            Err(FeedError::Unreached(_))
        ));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for bad in [
            vec![],
            vec![Some("0".into())],
            vec![Some("0".into()), Some("1".into()), Some("99".into())],
            vec![Some("x".into())],
        ] {
            let mut read = query("sort=new").start(None);
            assert!(read.absorb(&bad).is_err(), "{bad:?}");
        }
    }
}
