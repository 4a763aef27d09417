//! The roles' ACL users (`likes_core::acl`) in a real Redis: each may do its work and is refused
//! the rest, and nobody gets in without a password. That the rules are *enough* is shown by
//! every other integration test, which runs each service as its role.

use likes_core::PostId;
use likes_core::keys::{self, Channel, PostKeys, Shard};
use likes_core::scripts::{self, LikeCall};
use testkit::{Role, TestRedis};

fn conn(redis: &TestRedis, role: Role) -> redis::Connection {
    redis::Client::open(redis.url_as(role))
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("{role:?} logs in: {e}"))
}

/// The error code of a refused command (`NOPERM`, `NOAUTH`, `WRONGPASS`), or `None` if it ran.
fn refusal(result: redis::RedisResult<redis::Value>) -> Option<String> {
    result.err().map(|e| e.code().unwrap_or("?").to_owned())
}

fn like(c: &mut redis::Connection, post: PostId) -> redis::RedisResult<redis::Value> {
    let call = LikeCall {
        post,
        user: likes_core::UserId::new(1).expect("id"),
        on: true,
        ts: "2026-01-01T00:00:00.000Z".into(),
        require_post: false,
    };
    // As the edge calls it (`EVALSHA`, falling back to `EVAL`): no `SCRIPT LOAD`.
    let keys = call.keys();
    redis::cmd("EVAL")
        .arg(scripts::LIKE.source)
        .arg(keys.len())
        .arg(&keys)
        .arg(&call.args())
        .query(c)
}

const OPERATOR_ONLY: [&[&str]; 6] = [
    &["FLUSHALL"],
    &["FLUSHDB"],
    &["CONFIG", "GET", "*"],
    &["KEYS", "*"],
    &["ACL", "LIST"],
    &["SCRIPT", "FLUSH"],
];

fn run(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

#[test]
fn no_role_may_flush_configure_or_list_what_only_the_operator_may() {
    let redis = TestRedis::start();
    for role in Role::ALL {
        let mut c = conn(&redis, role);
        for args in OPERATOR_ONLY {
            assert_eq!(
                refusal(run(&mut c, args)).as_deref(),
                Some("NOPERM"),
                "{role:?} {args:?}"
            );
        }
    }
    // The operator may, which is what makes the refusals above the rules' doing.
    let mut op = redis.conn();
    assert_eq!(refusal(run(&mut op, &["CONFIG", "GET", "maxmemory"])), None);
}

#[test]
fn the_edge_runs_its_scripts_but_touches_no_key_outside_the_scheme() {
    let redis = TestRedis::start();
    let mut edge = conn(&redis, Role::Edge);
    let post = PostId::new(42).expect("id");
    let ran = like(&mut edge, post);
    assert!(ran.is_ok(), "the like script runs: {ran:?}");
    let likes: Option<String> = redis::cmd("HGET")
        .arg(PostKeys::new(post).post)
        .arg(keys::post_field::LIKES)
        .query(&mut redis.conn())
        .expect("HGET");
    assert_eq!(likes.as_deref(), Some("1"));
    assert_eq!(
        refusal(run(&mut edge, &["GET", "someone-elses:key"])).as_deref(),
        Some("NOPERM")
    );
    assert_eq!(
        refusal(run(&mut edge, &["DEL", &PostKeys::new(post).post])).as_deref(),
        Some("NOPERM"),
        "DEL is no script's and so not the edge's"
    );
}

#[test]
fn the_hub_reads_counts_and_subscribes_but_writes_nothing() {
    let redis = TestRedis::start();
    let mut hub = conn(&redis, Role::Hub);
    let PostKeys {
        post, like_channel, ..
    } = PostKeys::new(PostId::new(7).expect("id"));
    assert_eq!(refusal(run(&mut hub, &["HGET", &post, "likes"])), None);
    assert_eq!(
        refusal(run(&mut hub, &["HSET", &post, "likes", "1000000"])).as_deref(),
        Some("NOPERM")
    );
    assert_eq!(
        refusal(run(&mut hub, &["HGET", keys::USER_NAMES, "1"])).as_deref(),
        Some("NOPERM"),
        "user data is not the hub's"
    );
    assert_eq!(
        refusal(run(&mut hub, &["SPUBLISH", &like_channel, "{}"])).as_deref(),
        Some("NOPERM")
    );
    // A fresh connection per SSUBSCRIBE: the first one it accepts puts it in Pub/Sub mode.
    assert_eq!(
        refusal(run(
            &mut conn(&redis, Role::Hub),
            &["SSUBSCRIBE", &like_channel]
        )),
        None
    );
    assert_eq!(
        refusal(run(
            &mut conn(&redis, Role::Hub),
            &["SSUBSCRIBE", "another-channel"]
        ))
        .as_deref(),
        Some("NOPERM")
    );
}

#[test]
fn the_daemon_reads_streams_and_repairs_counts_but_cannot_publish_or_flush() {
    let redis = TestRedis::start();
    let mut daemon = conn(&redis, Role::Daemon);
    let shard = Shard::of(PostId::new(7).expect("id"));
    assert_eq!(refusal(run(&mut daemon, &["XLEN", &shard.stream()])), None);
    let post = PostKeys::new(PostId::new(7).expect("id")).post;
    assert_eq!(
        refusal(run(&mut daemon, &["HSET", &post, "likes", "3"])),
        None
    );
    assert_eq!(
        refusal(run(
            &mut daemon,
            &["SPUBLISH", &shard.channel(Channel::Like), "{}"]
        ))
        .as_deref(),
        Some("NOPERM")
    );
}

#[test]
fn nobody_gets_in_without_the_right_password() {
    let redis = TestRedis::start();
    let mut anonymous = redis::Client::open(format!("redis://{}", redis.host()))
        .and_then(|c| c.get_connection())
        .expect("a TCP connection");
    assert_eq!(
        refusal(run(&mut anonymous, &["PING"])).as_deref(),
        Some("NOAUTH")
    );
    let wrong = likes_core::acl::url(Role::Edge.user(), "guessed", &redis.host());
    let err = redis::Client::open(wrong)
        .and_then(|c| c.get_connection())
        .err()
        .expect("a wrong password is refused");
    assert!(
        err.to_string()
            .to_ascii_lowercase()
            .contains("authentication failed"),
        "{err}"
    );
}
