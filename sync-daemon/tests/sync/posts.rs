//! Post creations: written by the production post script, persisted into `posts` and `images`
//! exactly once, across replays and crashes.

use crate::support::{
    Env, InProcess, api_user, create_post, like_into, make_image, spawn_binary, store_image,
    store_legacy_image,
};

/// What `posts` should hold for one created post, in `psql` output form.
fn post_row(
    id: u64,
    author: &likes_core::api::User,
    caption: &str,
    image: &str,
    w: u32,
    h: u32,
) -> String {
    format!(
        "{id}|{}|{}|{caption}|{image}|{w}|{h}",
        author.id.get(),
        author.name
    )
}

const POSTS_SQL: &str =
    "SELECT id, author_id, author_name, caption, image_id, width, height FROM posts ORDER BY id";
const IMAGES_SQL: &str = "SELECT id, variant, content_type, etag, width, height, \
     left(encode(sha256(bytes), 'hex'), 32) FROM images ORDER BY id, variant";

fn image_rows(images: &[&likes_images::Processed]) -> String {
    let mut rows: Vec<String> = Vec::new();
    for img in images {
        for (variant, v) in [("full", &img.full), ("thumb", &img.thumb)] {
            rows.push(format!(
                "{}|{variant}|image/jpeg|{}|{}|{}|{}",
                img.image_id(),
                v.hash,
                v.width,
                v.height,
                likes_images::content_hash(&v.bytes)
            ));
        }
    }
    rows.sort();
    rows.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_and_their_images_are_persisted_exactly_once() {
    let (env, mut conn) = Env::with_conn().await;
    let ann = api_user(&mut conn, "ann").await;
    let bob = api_user(&mut conn, "bob").await;
    let (a, b) = (make_image(400, 300, 3), make_image(90, 160, 7));
    store_image(&mut conn, &a).await;
    store_image(&mut conn, &b).await;
    let mut expected = Vec::new();
    for (author, caption, img) in [
        (&ann, "sunset | over the bay", &a),
        (&bob, "", &b),
        (&ann, "same picture again", &a),
    ] {
        let (w, h) = (img.full.width, img.full.height);
        let id = create_post(&mut conn, author, caption, img.image_id(), w, h).await;
        expected.push(post_row(id, author, caption, img.image_id(), w, h));
    }
    // A post whose image never reached Redis is still persisted.
    let lost = "0123456789abcdef0123456789abcdef";
    let id = create_post(&mut conn, &bob, "lost image", lost, 10, 20).await;
    expected.push(post_row(id, &bob, "lost image", lost, 10, 20));
    let mut model = crate::support::Model::default();
    like_into(&mut conn, &mut model, 1, bob.id.get(), true).await;

    let config = env.config();
    let group = config.group.clone();
    let daemon = InProcess::spawn(config.clone());
    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;
    assert_eq!(env.pg.psql(POSTS_SQL), expected.join("\n"));
    assert_eq!(env.pg.psql(IMAGES_SQL), image_rows(&[&a, &b]));
    let created = env
        .pg
        .psql("SELECT count(*) FROM posts WHERE created_at > now() - interval '5 minutes'");
    assert_eq!(created, "4", "created_at comes from the event");
    env.assert_matches(&mut conn, &model).await;

    // Forced checkpoint loss: replaying every stream from the start adds nothing.
    env.forget_progress(&mut conn, &group).await;
    let daemon = InProcess::spawn(config);
    env.wait_drained(&mut conn, &group).await;
    daemon.stop().await;
    assert_eq!(env.pg.psql(POSTS_SQL), expected.join("\n"));
    assert_eq!(env.pg.psql(IMAGES_SQL), image_rows(&[&a, &b]));
    assert_eq!(env.pg.psql("SELECT count(*) FROM stream_dead_letters"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_survive_a_crash_between_commit_and_ack() {
    let (env, mut conn) = Env::with_conn().await;
    let ann = api_user(&mut conn, "ann").await;
    let images: Vec<_> = (0..6u8)
        .map(|i| make_image(64 + u32::from(i), 48, i + 1))
        .collect();
    let mut expected = Vec::new();
    for (i, img) in images.iter().enumerate() {
        store_image(&mut conn, img).await;
        // Several posts per shard, so batches hold posts of several streams' entries.
        for j in 0..8 {
            let caption = format!("post {i}.{j}");
            let (w, h) = (img.full.width, img.full.height);
            let id = create_post(&mut conn, &ann, &caption, img.image_id(), w, h).await;
            expected.push(post_row(id, &ann, &caption, img.image_id(), w, h));
        }
    }
    // Die right after the first COMMIT, before its XACK, twice; then drain.
    for _ in 0..2 {
        let mut child = spawn_binary(
            &env,
            &["--fault-exit-after-commit", "1", "--batch-max", "2"],
        );
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert_eq!(status.code(), Some(sync_daemon::FAULT_EXIT_CODE));
    }
    let partial: u64 = env
        .pg
        .psql("SELECT count(*) FROM posts")
        .parse()
        .expect("count");
    assert!(partial < expected.len() as u64, "{partial}");
    let committed = env
        .pg
        .psql("SELECT count(*) FROM stream_checkpoints WHERE last_ms >= 0");
    assert_ne!(committed, "0", "the crashed runs committed something");
    let mut child = spawn_binary(&env, &["--batch-max", "3"]);
    env.wait_drained(&mut conn, "sync-daemon").await;
    child.kill().expect("kill");
    let _ = child.wait();
    assert_eq!(env.pg.psql(POSTS_SQL), expected.join("\n"));
    let all: Vec<&likes_images::Processed> = images.iter().collect();
    assert_eq!(env.pg.psql(IMAGES_SQL), image_rows(&all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_stored_without_sizes_still_sync_with_their_sizes() {
    // Written by a component older than the size fields: the daemon reads the sizes from the
    // JPEG headers, so PostgreSQL gets what it would get from a current upload.
    let (env, mut conn) = Env::with_conn().await;
    let ann = api_user(&mut conn, "ann").await;
    let (old, new) = (make_image(400, 300, 5), make_image(90, 160, 9));
    store_legacy_image(&mut conn, &old).await;
    store_image(&mut conn, &new).await;
    for img in [&old, &new] {
        let (w, h) = (img.full.width, img.full.height);
        create_post(&mut conn, &ann, "", img.image_id(), w, h).await;
    }
    env.drain_once(&mut conn).await;
    assert_eq!(env.pg.psql(IMAGES_SQL), image_rows(&[&old, &new]));
}
