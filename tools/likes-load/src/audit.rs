//! The chaos audit: replays the ledger to know, for every (user, post), what the system
//! acknowledged last, and compares that with who Redis and PostgreSQL say like each post after
//! the drain. It finds what a count comparison cannot: an acknowledged like that vanished while
//! another user's stray like made the count right again.
//!
//! [`audit`] is pure (ledger + observed state in, findings out); [`observe`] reads the state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use anyhow::Context;
use likes_core::PostId;
use likes_core::keys::{PostKeys, post_field};
use serde::{Deserialize, Serialize};

use crate::ledger::{Entry, Op};
use crate::reads::Reads;

/// What a likers container of `lua/roaring.lua` is once it is this long: a bitmap.
const ROARING_BITMAP_LEN: usize = 8_192;
/// Pair findings kept in the report (every one is counted).
const ISSUES_KEPT: usize = 50;

/// What Redis and PostgreSQL hold after the drain, by raw post and user id.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The post hash's `likes` field (absent = 0).
    pub redis_count: HashMap<u64, u64>,
    /// Members of the post's likers structure.
    pub redis_likers: HashMap<u64, BTreeSet<u64>>,
    /// `post_like_counts.likes` (absent = 0).
    pub pg_count: HashMap<u64, u64>,
    /// The post's rows in `likes`.
    pub pg_likers: HashMap<u64, BTreeSet<u64>>,
    /// Posts whose hash exists in Redis / whose row exists in `posts` (for acked uploads).
    pub redis_posts: HashSet<u64>,
    pub pg_posts: HashSet<u64>,
}

/// One post's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostAudit {
    pub post: u64,
    /// Likes and unlikes sent (replays included), and those answered 2xx.
    pub sent: u64,
    pub acked: u64,
    /// Users whose last acknowledged op on the post is a like (nothing unknown after it).
    pub expected: u64,
    /// Users whose final state the ledger cannot tell (the replay did not settle them).
    pub uncertain: u64,
    pub redis: u64,
    pub redis_likers: u64,
    pub pg_count: u64,
    pub pg_rows: u64,
    /// Acknowledged likes missing in Redis or in PostgreSQL.
    pub lost: u64,
    /// Likes present although the last acknowledged op was an unlike (or none was sent).
    pub resurrected: u64,
}

impl PostAudit {
    /// A count above its distinct likers: some like was counted twice.
    pub fn counted_twice(&self) -> bool {
        self.redis > self.redis_likers || self.pg_count != self.pg_rows
    }

    /// Every source says the same number and it is the ledger's.
    pub fn agrees(&self) -> bool {
        self.uncertain == 0
            && [self.redis, self.redis_likers, self.pg_count, self.pg_rows]
                .iter()
                .all(|v| *v == self.expected)
    }
}

/// What went wrong for one (user, post).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairIssue {
    /// `lost` (acked like absent) or `resurrected` (acked unlike, or never liked, but present).
    pub kind: String,
    pub user: u64,
    pub post: u64,
    /// The last acknowledged request on the pair and when its answer came (Unix ms).
    pub last_acked_seq: Option<u64>,
    pub last_acked_t_ms: Option<u64>,
    pub in_redis: bool,
    pub in_pg: bool,
}

/// Uploads: acknowledged ones must exist in Redis and PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAudit {
    pub sent: u64,
    pub acked: u64,
    pub in_redis: u64,
    pub in_pg: u64,
    /// Acked uploads missing in either (first ones).
    pub missing: Vec<u64>,
}

/// The whole audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Every post, in post id order.
    pub posts: Vec<PostAudit>,
    /// Sums over `posts` (`post` is 0).
    pub totals: PostAudit,
    /// (user, post) pairs the ledger or the stores mention.
    pub pairs: u64,
    pub uncertain_pairs: u64,
    pub lost: u64,
    pub resurrected: u64,
    /// Posts whose count exceeds their distinct likers (Redis) or differs from its rows (PG).
    pub counted_twice: u64,
    /// Posts where the sources or the ledger disagree.
    pub mismatched_posts: u64,
    /// Requests sent with no answer line (the generator died?).
    pub unanswered: u64,
    pub uploads: UploadAudit,
    /// The first pair findings.
    pub issues: Vec<PairIssue>,
}

impl Audit {
    /// Nothing lost, nothing counted twice, nothing left uncertain, every source agreeing.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.resurrected == 0
            && self.counted_twice == 0
            && self.uncertain_pairs == 0
            && self.mismatched_posts == 0
            && self.uploads.missing.is_empty()
    }

    /// A markdown table of the first `n` posts (most sent first), the totals and the findings.
    pub fn markdown(&self, n: usize) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "**Audit: {}** — {} pairs; acknowledged likes lost {}, resurrected {}, posts counted twice {}, uncertain pairs {}, mismatching posts {}; uploads {} sent, {} acked, {} in Redis, {} in PostgreSQL\n",
            if self.passed() { "PASS" } else { "FAIL" },
            self.pairs,
            self.lost,
            self.resurrected,
            self.counted_twice,
            self.uncertain_pairs,
            self.mismatched_posts,
            self.uploads.sent,
            self.uploads.acked,
            self.uploads.in_redis,
            self.uploads.in_pg,
        );
        let _ = writeln!(
            md,
            "| post | sent | acked | expected | uncertain | Redis | Redis likers | PG count | PG rows | lost | resurrected |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let mut shown: Vec<&PostAudit> = self.posts.iter().collect();
        shown.sort_by(|a, b| b.sent.cmp(&a.sent).then(a.post.cmp(&b.post)));
        let row = |md: &mut String, name: String, p: &PostAudit| {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.sent,
                p.acked,
                p.expected,
                p.uncertain,
                p.redis,
                p.redis_likers,
                p.pg_count,
                p.pg_rows,
                p.lost,
                p.resurrected
            );
        };
        for p in shown.iter().take(n) {
            row(&mut md, format!("p_{}", p.post), p);
        }
        if self.posts.len() > n {
            let _ = writeln!(
                md,
                "| … {} more | | | | | | | | | | |",
                self.posts.len() - n
            );
        }
        row(
            &mut md,
            format!("**all {}**", self.posts.len()),
            &self.totals,
        );
        for i in &self.issues {
            let _ = writeln!(
                md,
                "- {} like: u_{} on p_{} (last acked seq {}, answered at {} ms; in Redis {}, in PostgreSQL {})",
                i.kind,
                i.user,
                i.post,
                i.last_acked_seq.map_or("none".into(), |s| s.to_string()),
                i.last_acked_t_ms.map_or("—".into(), |t| t.to_string()),
                i.in_redis,
                i.in_pg
            );
        }
        md
    }
}

/// What the ledger says a (user, post) ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Liked(bool),
    Unknown,
}

/// A request's seq and when its 2xx answer came (Unix ms).
type Acked = (u64, u64);

/// The effect of one request, from its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// 2xx: applied.
    Applied,
    /// 4xx: refused, nothing changed.
    Refused,
    /// 5xx, no answer, or no answer line: may or may not have been applied.
    Unknown,
}

fn effect(status: Option<u16>) -> Effect {
    match status {
        Some(s) if (200..300).contains(&s) => Effect::Applied,
        Some(s) if (400..500).contains(&s) => Effect::Refused,
        _ => Effect::Unknown,
    }
}

/// Judges the ledger against what the stores hold. `posts` are the run's posts (every one is
/// reported, liked or not). With one request in flight per user, the ledger's order of a
/// pair's requests is the order the edge applied them.
pub fn audit(entries: &[Entry], posts: &[u64], observed: &Observed) -> Audit {
    // seq → (user, post, op) for likes/unlikes, and the answers by seq.
    let mut answers: HashMap<u64, (Option<u16>, u64, Option<u64>)> = HashMap::new();
    for e in entries {
        if let Entry::Answer {
            seq,
            t_ms,
            status,
            post,
            ..
        } = e
        {
            answers.insert(*seq, (*status, *t_ms, *post));
        }
    }
    let mut out = Audit::default();
    let mut per_post: BTreeMap<u64, PostAudit> = posts
        .iter()
        .map(|p| {
            (
                *p,
                PostAudit {
                    post: *p,
                    ..PostAudit::default()
                },
            )
        })
        .collect();
    // Per (user, post): state, last acked (seq, t_ms).
    let mut pairs: HashMap<(u64, u64), (State, Option<Acked>)> = HashMap::new();
    for e in entries {
        let Entry::Sent {
            seq,
            user,
            post,
            op,
            ..
        } = e
        else {
            continue;
        };
        let answer = answers.get(seq);
        if answer.is_none() {
            out.unanswered += 1;
        }
        let status = answer.and_then(|a| a.0);
        if *op == Op::Upload {
            out.uploads.sent += 1;
            if let (Effect::Applied, Some(created)) = (effect(status), answer.and_then(|a| a.2)) {
                out.uploads.acked += 1;
                let (r, p) = (
                    observed.redis_posts.contains(&created),
                    observed.pg_posts.contains(&created),
                );
                out.uploads.in_redis += u64::from(r);
                out.uploads.in_pg += u64::from(p);
                if !(r && p) && out.uploads.missing.len() < ISSUES_KEPT {
                    out.uploads.missing.push(created);
                }
            }
            continue;
        }
        let Some(post) = *post else { continue };
        let like = *op == Op::Like;
        let pa = per_post.entry(post).or_insert_with(|| PostAudit {
            post,
            ..PostAudit::default()
        });
        pa.sent += 1;
        let slot = pairs
            .entry((*user, post))
            .or_insert((State::Liked(false), None));
        match effect(status) {
            Effect::Applied => {
                pa.acked += 1;
                slot.0 = State::Liked(like);
                slot.1 = answer.map(|a| (*seq, a.1));
            }
            Effect::Refused => {}
            // An unknown like of a liked pair (or unlike of an unliked one) changes nothing:
            // both are idempotent.
            Effect::Unknown => {
                if slot.0 != State::Liked(like) {
                    slot.0 = State::Unknown;
                }
            }
        }
    }
    // Pairs only the stores know of: likes nobody sent.
    let empty = BTreeSet::new();
    for (post, set) in observed.redis_likers.iter().chain(&observed.pg_likers) {
        for user in set {
            pairs
                .entry((*user, *post))
                .or_insert((State::Liked(false), None));
        }
    }
    let mut keys: Vec<&(u64, u64)> = pairs.keys().collect();
    keys.sort_unstable_by_key(|(u, p)| (*p, *u));
    for key in keys {
        let (user, post) = *key;
        let (state, last) = pairs[key];
        let in_redis = observed
            .redis_likers
            .get(&post)
            .unwrap_or(&empty)
            .contains(&user);
        let in_pg = observed
            .pg_likers
            .get(&post)
            .unwrap_or(&empty)
            .contains(&user);
        let pa = per_post.entry(post).or_insert_with(|| PostAudit {
            post,
            ..PostAudit::default()
        });
        let kind = match state {
            State::Unknown => {
                pa.uncertain += 1;
                out.uncertain_pairs += 1;
                None
            }
            State::Liked(true) => {
                pa.expected += 1;
                (!(in_redis && in_pg)).then(|| {
                    pa.lost += 1;
                    out.lost += 1;
                    "lost"
                })
            }
            State::Liked(false) => (in_redis || in_pg).then(|| {
                pa.resurrected += 1;
                out.resurrected += 1;
                "resurrected"
            }),
        };
        if let Some(kind) = kind
            && out.issues.len() < ISSUES_KEPT
        {
            out.issues.push(PairIssue {
                kind: kind.into(),
                user,
                post,
                last_acked_seq: last.map(|l| l.0),
                last_acked_t_ms: last.map(|l| l.1),
                in_redis,
                in_pg,
            });
        }
    }
    out.pairs = pairs.len() as u64;
    for (post, pa) in &mut per_post {
        let size = |m: &HashMap<u64, BTreeSet<u64>>| m.get(post).map_or(0, |s| s.len() as u64);
        pa.redis = observed.redis_count.get(post).copied().unwrap_or(0);
        pa.redis_likers = size(&observed.redis_likers);
        pa.pg_count = observed.pg_count.get(post).copied().unwrap_or(0);
        pa.pg_rows = size(&observed.pg_likers);
        out.counted_twice += u64::from(pa.counted_twice());
        out.mismatched_posts += u64::from(!pa.agrees());
        let t = &mut out.totals;
        t.sent += pa.sent;
        t.acked += pa.acked;
        t.expected += pa.expected;
        t.uncertain += pa.uncertain;
        t.redis += pa.redis;
        t.redis_likers += pa.redis_likers;
        t.pg_count += pa.pg_count;
        t.pg_rows += pa.pg_rows;
        t.lost += pa.lost;
        t.resurrected += pa.resurrected;
    }
    out.posts = per_post.into_values().collect();
    out
}

/// The user ids in one likers hash (`lua/roaring.lua`): field = id / 65536, value = a sorted
/// array of big-endian u16 (low 16 bits) or, at 8 KiB, a bitmap with the most significant bit
/// first.
pub fn decode_likers(fields: &[(String, Vec<u8>)]) -> anyhow::Result<BTreeSet<u64>> {
    let mut out = BTreeSet::new();
    for (field, value) in fields {
        let high: u64 = field
            .parse()
            .with_context(|| format!("likers field `{field}` is not a number"))?;
        if value.len() == ROARING_BITMAP_LEN {
            for (i, byte) in value.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (0x80 >> bit) != 0 {
                        out.insert(high * 65_536 + (i * 8 + bit) as u64);
                    }
                }
            }
        } else {
            anyhow::ensure!(
                value.len().is_multiple_of(2),
                "likers container of odd length {}",
                value.len()
            );
            for pair in value.chunks_exact(2) {
                out.insert(high * 65_536 + u64::from(u16::from_be_bytes([pair[0], pair[1]])));
            }
        }
    }
    Ok(out)
}

/// Reads what [`audit`] compares with: every post's count and likers in Redis and PostgreSQL,
/// and whether the uploaded posts exist.
pub async fn observe(
    redis: &service_kit::redis::Redis,
    database_url: &str,
    posts: &[u64],
    uploads: &[u64],
) -> anyhow::Result<Observed> {
    let mut o = Observed::default();
    let conn = crate::reads::connect(redis).await?;
    let ids = |raw: &[u64]| -> Vec<PostId> { raw.iter().filter_map(|p| PostId::new(*p)).collect() };
    let cmd = |name: &str, key: &str| {
        let mut c = redis::cmd(name);
        c.arg(key);
        c
    };
    // HKEYS then HMGET rather than HGETALL: the generator's Redis user may run only what the
    // edge's scripts run (likes-core's ACL roles).
    for chunk in ids(posts).chunks(200) {
        let mut reads = Reads::for_conn(&conn);
        for p in chunk {
            let k = PostKeys::new(*p);
            let mut hget = cmd("HGET", &k.post);
            hget.arg(post_field::LIKES);
            reads
                .add(&k.post, hget)
                .add(&k.likers, cmd("HKEYS", &k.likers));
        }
        let got = reads
            .query(&conn)
            .await
            .context("reading counts and likers fields")?;
        let mut fields_of = Vec::with_capacity(chunk.len());
        for (p, pair) in chunk.iter().zip(got.chunks(2)) {
            let count: Option<u64> = redis::from_redis_value(pair[0].clone())?;
            let fields: Vec<String> = redis::from_redis_value(pair[1].clone())?;
            o.redis_count.insert(p.get(), count.unwrap_or(0));
            fields_of.push(fields);
        }
        let mut reads = Reads::for_conn(&conn);
        for (p, fields) in chunk.iter().zip(&fields_of) {
            if !fields.is_empty() {
                let key = PostKeys::new(*p).likers;
                let mut hmget = cmd("HMGET", &key);
                hmget.arg(fields);
                reads.add(&key, hmget);
            }
        }
        let mut values = if reads.is_empty() {
            Vec::new().into_iter()
        } else {
            let got = reads
                .query(&conn)
                .await
                .context("reading likers containers")?;
            got.into_iter()
                .map(redis::from_redis_value::<Vec<Option<Vec<u8>>>>)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
        };
        for (p, fields) in chunk.iter().zip(fields_of) {
            let containers = if fields.is_empty() {
                Vec::new()
            } else {
                values.next().unwrap_or_default()
            };
            let pairs: Vec<(String, Vec<u8>)> = fields
                .into_iter()
                .zip(containers)
                .filter_map(|(f, c)| Some((f, c?)))
                .collect();
            o.redis_likers.insert(
                p.get(),
                decode_likers(&pairs).with_context(|| format!("likers of {p}"))?,
            );
        }
    }
    for chunk in ids(uploads).chunks(500) {
        let mut reads = Reads::for_conn(&conn);
        for p in chunk {
            let key = PostKeys::new(*p).post;
            reads.add(&key, cmd("EXISTS", &key));
        }
        let got = reads.query(&conn).await.context("EXISTS posts")?;
        for (p, v) in chunk.iter().zip(got) {
            if redis::from_redis_value::<bool>(v)? {
                o.redis_posts.insert(p.get());
            }
        }
    }
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    tokio::spawn(connection);
    let all: Vec<i64> = posts.iter().map(|p| *p as i64).collect();
    for r in client
        .query(
            "SELECT post_id, likes FROM post_like_counts WHERE post_id = ANY($1)",
            &[&all],
        )
        .await
        .context("reading post_like_counts")?
    {
        o.pg_count
            .insert(r.get::<_, i64>(0) as u64, r.get::<_, i64>(1).max(0) as u64);
    }
    for r in client
        .query(
            "SELECT post_id, user_id FROM likes WHERE post_id = ANY($1)",
            &[&all],
        )
        .await
        .context("reading likes rows")?
    {
        o.pg_likers
            .entry(r.get::<_, i64>(0) as u64)
            .or_default()
            .insert(r.get::<_, i64>(1) as u64);
    }
    let up: Vec<i64> = uploads.iter().map(|p| *p as i64).collect();
    for r in client
        .query("SELECT id FROM posts WHERE id = ANY($1)", &[&up])
        .await
        .context("reading posts")?
    {
        o.pg_posts.insert(r.get::<_, i64>(0) as u64);
    }
    Ok(o)
}

/// The posts acknowledged uploads created, from the ledger.
pub fn uploaded_posts(entries: &[Entry]) -> Vec<u64> {
    let uploads: HashSet<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Sent {
                seq,
                op: Op::Upload,
                ..
            } => Some(*seq),
            _ => None,
        })
        .collect();
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Answer {
                seq, post: Some(p), ..
            } if uploads.contains(seq) => Some(*p),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerPhase;

    /// A ledger builder: `op` sends and answers in one go.
    #[derive(Default)]
    struct L(Vec<Entry>, u64);

    impl L {
        fn op(&mut self, user: u64, post: u64, op: Op, status: Option<u16>) -> &mut Self {
            self.1 += 1;
            let seq = self.1;
            self.0.push(Entry::Sent {
                seq,
                t_ms: seq * 10,
                user,
                post: Some(post),
                op,
                phase: LedgerPhase::Load,
            });
            self.0.push(Entry::Answer {
                seq,
                t_ms: seq * 10 + 1,
                status,
                error: status.is_none().then(|| "no_answer".into()),
                likes: None,
                post: None,
            });
            self
        }
    }

    fn store(likers: &[(u64, &[u64])]) -> Observed {
        let mut o = Observed::default();
        for (post, users) in likers {
            let set: BTreeSet<u64> = users.iter().copied().collect();
            o.redis_count.insert(*post, set.len() as u64);
            o.pg_count.insert(*post, set.len() as u64);
            o.redis_likers.insert(*post, set.clone());
            o.pg_likers.insert(*post, set);
        }
        o
    }

    const OK: Option<u16> = Some(200);
    const DOWN: Option<u16> = Some(503);

    #[test]
    fn the_last_acknowledged_op_decides_and_agreeing_stores_pass() {
        let mut l = L::default();
        l.op(1, 10, Op::Like, OK)
            .op(1, 10, Op::Unlike, OK)
            .op(1, 10, Op::Like, OK) // u1 likes p10
            .op(2, 10, Op::Like, OK)
            .op(2, 10, Op::Unlike, OK) // u2 does not
            .op(3, 10, Op::Like, Some(429)) // refused: changes nothing
            .op(4, 11, Op::Like, OK)
            .op(4, 11, Op::Like, None); // unknown re-like of a liked pair: still liked
        let a = audit(&l.0, &[10, 11, 12], &store(&[(10, &[1]), (11, &[4])]));
        assert!(a.passed(), "{a:#?}");
        assert_eq!(a.posts.len(), 3);
        let p10 = &a.posts[0];
        assert_eq!((p10.sent, p10.acked, p10.expected), (6, 5, 1));
        assert_eq!(a.totals.expected, 2);
        assert_eq!((a.pairs, a.uncertain_pairs, a.unanswered), (4, 0, 0));
        assert!(a.markdown(10).contains("**Audit: PASS**"));
    }

    #[test]
    fn a_missing_acknowledged_like_is_lost_wherever_it_is_missing() {
        let mut l = L::default();
        l.op(1, 10, Op::Like, OK).op(2, 10, Op::Like, OK);
        // PostgreSQL lost u2's row but its count still says 2 (and Redis is right).
        let mut o = store(&[(10, &[1, 2])]);
        o.pg_likers.insert(10, [1].into());
        let a = audit(&l.0, &[10], &o);
        assert_eq!((a.lost, a.counted_twice, a.mismatched_posts), (1, 1, 1));
        assert_eq!(
            a.issues,
            vec![PairIssue {
                kind: "lost".into(),
                user: 2,
                post: 10,
                last_acked_seq: Some(2),
                last_acked_t_ms: Some(21),
                in_redis: true,
                in_pg: false,
            }]
        );
        assert!(!a.passed());
        // A stranger's like keeps the count right, but the membership check still finds it.
        let o = store(&[(10, &[1, 3])]);
        let a = audit(&l.0, &[10], &o);
        assert_eq!((a.lost, a.resurrected, a.counted_twice), (1, 1, 0));
        assert_eq!(a.posts[0].redis, a.posts[0].expected);
    }

    #[test]
    fn acked_unlikes_present_are_resurrected_and_unknown_tails_are_uncertain() {
        let mut l = L::default();
        l.op(1, 10, Op::Like, OK)
            .op(1, 10, Op::Unlike, OK) // resurrected below
            .op(2, 10, Op::Like, OK)
            .op(2, 10, Op::Unlike, None) // unknown: uncertain
            .op(3, 10, Op::Like, DOWN) // 5xx: uncertain
            .op(3, 10, Op::Like, OK); // ...until the replay settles it
        let a = audit(&l.0, &[10], &store(&[(10, &[1, 2, 3])]));
        assert_eq!((a.resurrected, a.uncertain_pairs, a.lost), (1, 1, 0));
        assert_eq!(a.posts[0].expected, 1);
        assert!(!a.passed());
    }

    #[test]
    fn counts_above_distinct_likers_are_counted_twice() {
        let mut l = L::default();
        l.op(1, 10, Op::Like, OK);
        let mut o = store(&[(10, &[1])]);
        o.redis_count.insert(10, 2);
        let a = audit(&l.0, &[10], &o);
        assert_eq!((a.lost, a.counted_twice), (0, 1));
        let mut o = store(&[(10, &[1])]);
        o.pg_count.insert(10, 2);
        assert_eq!(audit(&l.0, &[10], &o).counted_twice, 1);
    }

    #[test]
    fn acknowledged_uploads_must_exist_in_both_stores() {
        let mut entries = Vec::new();
        for (seq, created) in [(1, Some(50)), (2, Some(51)), (3, None)] {
            entries.push(Entry::Sent {
                seq,
                t_ms: 0,
                user: 1,
                post: None,
                op: Op::Upload,
                phase: LedgerPhase::Load,
            });
            entries.push(Entry::Answer {
                seq,
                t_ms: 1,
                status: Some(if created.is_some() { 201 } else { 503 }),
                error: None,
                likes: None,
                post: created,
            });
        }
        assert_eq!(uploaded_posts(&entries), vec![50, 51]);
        let mut o = Observed::default();
        o.redis_posts.extend([50, 51]);
        o.pg_posts.insert(50);
        let a = audit(&entries, &[], &o);
        assert_eq!(
            a.uploads,
            UploadAudit {
                sent: 3,
                acked: 2,
                in_redis: 2,
                in_pg: 1,
                missing: vec![51],
            }
        );
        assert!(!a.passed());
    }

    #[test]
    fn likers_decode_from_arrays_and_bitmaps() {
        let mut bitmap = vec![0u8; ROARING_BITMAP_LEN];
        bitmap[0] = 0b1000_0001; // low ids 0 and 7
        bitmap[8_191] = 1; // low id 65,535
        let fields = vec![
            ("0".to_owned(), vec![0, 5, 1, 0]), // 5 and 256
            ("2".to_owned(), bitmap),
        ];
        let got: Vec<u64> = decode_likers(&fields)
            .expect("decodes")
            .into_iter()
            .collect();
        assert_eq!(got, vec![5, 256, 131_072, 131_079, 131_072 + 65_535]);
        assert!(decode_likers(&[("x".into(), vec![])]).is_err());
        assert!(decode_likers(&[("0".into(), vec![1])]).is_err());
    }
}
