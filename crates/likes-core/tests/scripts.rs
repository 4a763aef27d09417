//! The Lua scripts against a real Redis, checked against a plain `BTreeSet` model: the roaring
//! dedupe structure must agree with it exactly through array→bitmap conversion, removals and
//! paging, and every state change must emit exactly one stream entry.

use std::collections::BTreeSet;

use likes_core::keys::PostKeys;
use likes_core::scripts::{self, CardinalityCall, ContainsCall, LikeCall};
use likes_core::{PostId, UserId};
use redis::Commands;
use testkit::TestRedis;

fn invoke<T: redis::FromRedisValue>(
    conn: &mut redis::Connection,
    call: &LikeCall,
) -> redis::RedisResult<T> {
    let script = redis::Script::new(scripts::LIKE.source);
    testkit::invocation(&script, call.keys(), call.args()).invoke(conn)
}

fn like(conn: &mut redis::Connection, post: PostId, user: u64, on: bool) -> (i64, i64) {
    let user = UserId::new(user).expect("nonzero");
    invoke(
        conn,
        &LikeCall {
            post,
            user,
            on,
            ts: "2026-01-01T00:00:00.000Z".into(),
            require_post: false,
        },
    )
    .expect("like script")
}

fn page(conn: &mut redis::Connection, post: PostId, after: u64, limit: u64) -> Vec<u64> {
    let call = scripts::LikersCall {
        post,
        after,
        limit: u32::try_from(limit).expect("a page size"),
    };
    let script = redis::Script::new(scripts::LIKERS.source);
    testkit::invocation(&script, call.keys(), call.args())
        .invoke(conn)
        .expect("likers script")
}

fn all_pages(conn: &mut redis::Connection, post: PostId, limit: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let p = page(conn, post, after, limit);
        out.extend(&p);
        match p.last() {
            Some(&last) if p.len() as u64 == limit => after = last,
            _ => return out,
        }
    }
}

fn contains(conn: &mut redis::Connection, post: PostId, user: u64) -> bool {
    let call = ContainsCall {
        post,
        user: UserId::new(user).expect("user ids start at 1"),
    };
    let r: i64 = testkit::invocation(
        &redis::Script::new(scripts::CONTAINS.source),
        call.keys(),
        call.args(),
    )
    .invoke(conn)
    .expect("contains");
    r == 1
}

fn cardinality(conn: &mut redis::Connection, post: PostId) -> u64 {
    let call = CardinalityCall { post };
    testkit::invocation(
        &redis::Script::new(scripts::CARDINALITY.source),
        call.keys(),
        [],
    )
    .invoke(conn)
    .expect("cardinality")
}

/// A deterministic pseudo-random sequence (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn roaring_agrees_with_a_set_model_through_conversion_and_removal() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let post = PostId::new(5).expect("nonzero");
    let mut model = BTreeSet::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut changes = 0u64;
    // Users concentrated in two containers (so one of them crosses the 4,095-entry array limit
    // and becomes a bitmap) plus a sparse tail far away.
    for step in 0..20_000u64 {
        let r = rng.next();
        let user = match r % 10 {
            0..=6 => 1 + r / 16 % 6_000,
            7 | 8 => 65_536 * 3 + r / 16 % 300,
            _ => 1 + r / 16 % 5_000_000_000,
        };
        let on = step < 12_000 || !r.is_multiple_of(3);
        let changed_model = if on {
            model.insert(user)
        } else {
            model.remove(&user)
        };
        let (count, changed) = like(&mut conn, post, user, on);
        assert_eq!(
            changed == 1,
            changed_model,
            "step {step}: user {user} on={on}"
        );
        assert_eq!(count as usize, model.len(), "step {step}");
        changes += u64::from(changed_model);
    }
    let listed = all_pages(&mut conn, post, 173);
    assert_eq!(
        listed,
        model.iter().copied().collect::<Vec<_>>(),
        "pages list every liker once, in id order"
    );
    assert_eq!(cardinality(&mut conn, post), model.len() as u64);
    for probe in [1, 2, 3, 4_095, 4_096, 65_536 * 3 + 7, 4_999_999_999] {
        assert_eq!(
            contains(&mut conn, post, probe),
            model.contains(&probe),
            "contains({probe})"
        );
    }
    let stream_len: u64 = conn.xlen(PostKeys::new(post).stream).expect("xlen");
    assert_eq!(
        stream_len, changes,
        "one stream entry per state change, none for repeats"
    );

    // Unlike everyone: the structure disappears entirely.
    for user in model.clone() {
        like(&mut conn, post, user, false);
    }
    let exists: bool = conn.exists(PostKeys::new(post).likers).expect("exists");
    assert!(!exists, "an empty dedupe structure leaves no key behind");
}

#[test]
fn unknown_post_is_refused_only_when_required() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let post = PostId::new(77).expect("nonzero");
    let k = PostKeys::new(post);
    let call =
        |conn: &mut redis::Connection, require_post: bool| -> redis::RedisResult<(i64, i64)> {
            let user = UserId::new(1).expect("nonzero");
            invoke(
                conn,
                &LikeCall {
                    post,
                    user,
                    on: true,
                    ts: "t".into(),
                    require_post,
                },
            )
        };
    let err = call(&mut conn, true).expect_err("unknown post");
    assert!(scripts::is_no_post(&err.to_string()), "{err}");
    let _: () = conn.hset(&k.post, "id", post.get()).expect("hset");
    assert_eq!(call(&mut conn, true).expect("known post"), (1, 1));
}

#[test]
fn recent_likers_are_newest_first_and_capped() {
    let redis = TestRedis::start();
    let mut conn = redis.conn();
    let post = PostId::new(9).expect("nonzero");
    for user in 1..=12 {
        like(&mut conn, post, user, true);
    }
    like(&mut conn, post, 12, false);
    let recent: Vec<u64> = conn
        .lrange(PostKeys::new(post).recent, 0, -1)
        .expect("lrange");
    assert_eq!(recent, vec![11, 10, 9, 8, 7, 6, 5]);
}
