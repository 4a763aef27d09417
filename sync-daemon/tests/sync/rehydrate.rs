//! Redis lost, then rebuilt from PostgreSQL with `sync-daemon rehydrate`: every read the edge
//! makes (feed pages, one post, likers pages, liked-by-me, counts, names, images, id sequences)
//! answers exactly as before the loss; and reconciliation repairs a corrupted likers structure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use likes_core::api::{FeedCursor, FeedQuery, FeedSort};
use likes_core::keys::{self, PostKeys, post_field};
use likes_core::scripts::{self, CardinalityCall, ContainsCall, FeedCall, FeedReply};
use likes_core::{PostId, UserId};
use redis::aio::ConnectionLike;

use crate::support::{
    Env, InProcess, Lcg, Model, Store, api_user, create_post, like, like_into, make_image,
    store_image,
};

/// Every page of one feed order, as the edge reads it for `viewer`.
async fn feed(
    conn: &mut (impl ConnectionLike + Send),
    sort: FeedSort,
    viewer: Option<UserId>,
) -> Vec<FeedReply> {
    let script = redis::Script::new(scripts::FEED.source);
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let query = format!("sort={}&limit=4{cursor}", sort.as_str());
        let call = FeedCall::Page(FeedQuery::parse(&query).expect("valid query"));
        let page = read(conn, &script, &call, viewer).await;
        let next = FeedCursor::encode(sort, &page.next);
        pages.push(page);
        match next {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return pages,
        }
        assert!(pages.len() < 1000, "the feed never ends");
    }
}

async fn one_post(
    conn: &mut (impl ConnectionLike + Send),
    post: u64,
    viewer: Option<UserId>,
) -> FeedReply {
    let call = FeedCall::One(PostId::new(post).expect("nonzero"));
    let script = redis::Script::new(scripts::FEED.source);
    read(conn, &script, &call, viewer).await
}

/// One read of the feed script, as the feed component makes it.
async fn read(
    conn: &mut (impl ConnectionLike + Send),
    script: &redis::Script,
    call: &FeedCall,
    viewer: Option<UserId>,
) -> FeedReply {
    let mut read = call.start(viewer);
    while let Some((keys, args)) = read.next_call() {
        let items: Vec<Option<String>> = testkit::invocation(script, keys, args)
            .invoke_async(conn)
            .await
            .expect("feed script");
        read.absorb(&items).expect("feed reply");
    }
    read.finish().expect("feed page")
}

/// Every likers page of `post`, as `GET /api/posts/{id}/likers` pages them.
async fn likers(conn: &mut (impl ConnectionLike + Send), post: u64) -> Vec<Vec<u64>> {
    let post = PostId::new(post).expect("nonzero");
    let script = redis::Script::new(scripts::LIKERS.source);
    let mut pages = Vec::new();
    let mut after = 0u64;
    loop {
        let call = scripts::LikersCall {
            post,
            after,
            limit: likes_core::api::LIKERS_PAGE_MAX,
        };
        let page: Vec<u64> = testkit::invocation(&script, call.keys(), call.args())
            .invoke_async(conn)
            .await
            .expect("likers script");
        let Some(&last) = page.last() else {
            return pages;
        };
        after = last;
        pages.push(page);
    }
}

async fn contains(conn: &mut (impl ConnectionLike + Send), post: u64, user: u64) -> i64 {
    let call = ContainsCall {
        post: PostId::new(post).expect("nonzero"),
        user: UserId::new(user).expect("nonzero"),
    };
    let script = redis::Script::new(scripts::CONTAINS.source);
    testkit::invocation(&script, call.keys(), call.args())
        .invoke_async(conn)
        .await
        .expect("contains script")
}

async fn cardinality(conn: &mut (impl ConnectionLike + Send), post: u64) -> i64 {
    let call = CardinalityCall {
        post: PostId::new(post).expect("nonzero"),
    };
    let script = redis::Script::new(scripts::CARDINALITY.source);
    testkit::invocation(&script, call.keys(), [])
        .invoke_async(conn)
        .await
        .expect("cardinality script")
}

/// Everything the edge can read, in one comparable value.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    feeds: Vec<(String, Vec<FeedReply>)>,
    posts: BTreeMap<u64, (FeedReply, FeedReply)>,
    likers: BTreeMap<u64, Vec<Vec<u64>>>,
    contains: Vec<i64>,
    counts: BTreeMap<u64, (Option<i64>, i64)>,
    recent: BTreeMap<u64, Vec<u64>>,
    names: BTreeMap<u64, String>,
    images: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    seqs: (Option<u64>, Option<u64>),
}

async fn snapshot(
    conn: &mut (impl ConnectionLike + Send),
    posts: u64,
    viewers: &[u64],
    images: &[String],
) -> Snapshot {
    let mut feeds = Vec::new();
    for sort in [FeedSort::New, FeedSort::Top] {
        for viewer in [None]
            .into_iter()
            .chain(viewers.iter().map(|&v| UserId::new(v)))
        {
            let label = format!("{}/{viewer:?}", sort.as_str());
            feeds.push((label, feed(conn, sort, viewer).await));
        }
    }
    let mut s = Snapshot {
        feeds,
        posts: BTreeMap::new(),
        likers: BTreeMap::new(),
        contains: Vec::new(),
        counts: BTreeMap::new(),
        recent: BTreeMap::new(),
        names: redis::cmd("HGETALL")
            .arg(keys::USER_NAMES)
            .query_async(conn)
            .await
            .expect("names"),
        images: BTreeMap::new(),
        seqs: (
            redis::cmd("GET")
                .arg(keys::USER_SEQ)
                .query_async(conn)
                .await
                .expect("GET"),
            redis::cmd("GET")
                .arg(keys::POST_SEQ)
                .query_async(conn)
                .await
                .expect("GET"),
        ),
    };
    // Posts 1..=posts exist; posts+1.. were liked but never created.
    for post in 1..=posts + 2 {
        let viewer = UserId::new(viewers[0]);
        s.posts.insert(
            post,
            (
                one_post(conn, post, None).await,
                one_post(conn, post, viewer).await,
            ),
        );
        s.likers.insert(post, likers(conn, post).await);
        for &user in viewers {
            s.contains.push(contains(conn, post, user).await);
        }
        let k = PostKeys::new(PostId::new(post).expect("nonzero"));
        let count: Option<i64> = redis::cmd("HGET")
            .arg(&k.post)
            .arg(post_field::LIKES)
            .query_async(conn)
            .await
            .expect("HGET");
        s.counts
            .insert(post, (count, cardinality(conn, post).await));
        let recent: Vec<u64> = redis::cmd("LRANGE")
            .arg(&k.recent)
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await
            .expect("LRANGE");
        s.recent.insert(post, recent);
    }
    for id in images {
        let h: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(keys::image_key(id))
            .query_async(conn)
            .await
            .expect("HGETALL");
        s.images.insert(id.clone(), h);
    }
    s
}

/// Keys of every stream, to prove rehydrate wrote no entries.
async fn stream_lengths(conn: &mut (impl ConnectionLike + Send)) -> Vec<i64> {
    let mut out = Vec::new();
    for stream in keys::all_streams() {
        out.push(
            redis::cmd("XLEN")
                .arg(&stream)
                .query_async(conn)
                .await
                .expect("XLEN"),
        );
    }
    out
}

struct World {
    posts: u64,
    viewers: Vec<u64>,
    images: Vec<String>,
    model: Model,
}

/// Users, posts with images, and likes (a dense post past the array/bitmap threshold, users
/// beyond one roaring container, unlikes that thin the recent lists), all by the real scripts.
async fn populate(conn: &mut (impl ConnectionLike + Send)) -> World {
    let mut authors = Vec::new();
    for name in ["ann", "bob", "cy", "dee"] {
        authors.push(api_user(conn, name).await);
    }
    let mut images = Vec::new();
    let mut posts = 0;
    for i in 0..3u8 {
        let img = make_image(120 + u32::from(i) * 40, 90, i + 11);
        store_image(conn, &img).await;
        images.push(img);
    }
    for i in 0..14usize {
        let img = &images[i % images.len()];
        let author = &authors[i % authors.len()];
        let caption = format!("caption {i} ✓");
        create_post(
            conn,
            author,
            &caption,
            img.image_id(),
            img.full.width,
            img.full.height,
        )
        .await;
        posts += 1;
    }
    let mut model = Model::default();
    let mut rng = Lcg(31);
    let named: Vec<u64> = authors.iter().map(|a| a.id.get()).collect();
    // Named users liking and unliking everything, some posts never created (posts + 1, + 2).
    for _ in 0..600 {
        let post = 1 + rng.next(posts + 2);
        let user = named[rng.next(named.len() as u64) as usize];
        like_into(conn, &mut model, post, user, rng.next(10) < 6).await;
    }
    // Anonymous-to-us users with ids across several roaring containers.
    for _ in 0..1500 {
        let post = 1 + rng.next(posts);
        let user = 5 + rng.next(200_000);
        like_into(conn, &mut model, post, user, rng.next(10) < 8).await;
    }
    // Post 3: more than R_ARRAY_MAX likers in one container (a bitmap), some unliked again.
    for user in 10..4_400u64 {
        like(conn, 3, user, true).await;
        model.likes.insert((3, user));
    }
    for user in (10..4_400u64).step_by(7) {
        like(conn, 3, user, false).await;
        model.likes.remove(&(3, user));
    }
    let mut viewers = named;
    viewers.extend([17, 70_000, 150_001]);
    World {
        posts,
        viewers,
        images: images.iter().map(|i| i.image_id().to_owned()).collect(),
        model,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_then_rehydrate_serves_exactly_what_was_persisted() {
    let (env, mut conn) = Env::with_conn().await;
    flushall_then_rehydrate(&env, &mut conn).await;
}

/// The same on a Redis Cluster of 3 primaries with replicas: every pipeline of the rebuild is
/// split by slot, and every read after it is the same as before, shard by shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_then_rehydrate_rebuilds_a_cluster_exactly() {
    let env = Env::cluster();
    let mut conn = env.redis.async_conn().await;
    flushall_then_rehydrate(&env, &mut conn).await;
}

/// Populates, drains, snapshots every read; then `FLUSHALL` (every primary, on a cluster),
/// rehydrate twice, and the snapshot must be the same, with no stream entry written.
async fn flushall_then_rehydrate(env: &Env<impl Store>, conn: &mut (impl ConnectionLike + Send)) {
    let world = populate(conn).await;
    let config = env.config();
    let group = config.group.clone();
    let daemon = InProcess::spawn(config.clone());
    env.wait_drained(conn, &group).await;
    daemon.stop().await;
    env.assert_matches(conn, &world.model).await;
    let before = snapshot(conn, world.posts, &world.viewers, &world.images).await;
    assert!(before.counts[&3].1 > 3_000, "post 3 is dense");

    let _: () = redis::cmd("FLUSHALL")
        .query_async(conn)
        .await
        .expect("FLUSHALL");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sync-daemon"))
        .args([
            "--redis-url",
            &env.redis.daemon_url(),
            "--database-url",
            &env.pg.url(),
            "rehydrate",
        ])
        .output()
        .expect("running sync-daemon rehydrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stream_lengths(conn).await,
        vec![0; keys::all_streams().len()]
    );
    let after = snapshot(conn, world.posts, &world.viewers, &world.images).await;
    assert_eq!(after, before);

    // Idempotent: a second run (in-process this time) changes nothing.
    let again = sync_daemon::rehydrate::rehydrate(&env.pg.url(), &env.redis.daemon_url())
        .await
        .expect("rehydrate");
    assert_eq!(again.likes as usize, world.model.likes.len());
    assert_eq!(
        snapshot(conn, world.posts, &world.viewers, &world.images).await,
        before
    );
    assert_eq!(
        stream_lengths(conn).await,
        vec![0; keys::all_streams().len()]
    );

    // Life goes on: new likes sync on top of the rehydrated state.
    let mut model = world.model;
    let daemon = InProcess::spawn(config);
    like_into(conn, &mut model, 1, 999_999, true).await;
    like_into(conn, &mut model, 3, 10, false).await;
    env.wait_drained(conn, &group).await;
    daemon.stop().await;
    env.assert_matches(conn, &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_rebuilds_a_corrupted_likers_structure() {
    let (env, mut conn) = Env::with_conn().await;
    let mut model = Model::default();
    for user in (1..=5_000u64).chain([70_001, 70_002]) {
        like_into(&mut conn, &mut model, 9, user, true).await;
    }
    let mut config = env.config();
    config.reconcile_every = Some(Duration::from_millis(100));
    let group = config.group.clone();
    let daemon = InProcess::spawn(config);
    env.wait_drained(&mut conn, &group).await;
    let k = PostKeys::new(PostId::new(9).expect("nonzero"));
    let likers_before = likers(&mut conn, 9).await;
    // Corruption: one container lost, the count and `top` score wrong.
    let _: () = redis::pipe()
        .hdel(&k.likers, 0)
        .hset(&k.post, post_field::LIKES, 3)
        .zadd(&k.top, 9, 3)
        .query_async(&mut conn)
        .await
        .expect("corrupting");
    assert_eq!(cardinality(&mut conn, 9).await, 2);
    // The next like makes the post recently active.
    like_into(&mut conn, &mut model, 9, 70_003, true).await;
    env.wait_drained(&mut conn, &group).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while cardinality(&mut conn, 9).await != 5_003 {
        assert!(Instant::now() < deadline, "likers never rebuilt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
    let mut expected = likers_before.concat();
    expected.push(70_003);
    assert_eq!(likers(&mut conn, 9).await.concat(), expected);
    assert_eq!(contains(&mut conn, 9, 1).await, 1);
    let score: i64 = redis::cmd("ZSCORE")
        .arg(&k.top)
        .arg(9)
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    assert_eq!(score, 5_003);
    env.assert_matches(&mut conn, &model).await;
}
