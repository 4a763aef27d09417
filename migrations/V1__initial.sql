-- The record of the likes system. Only the sync daemon writes here (ARCHITECTURE.md).
--
-- Ids are the bare integers Redis hands out (`u_42` on the wire is 42 here).
--
-- Partitioning plan for billions of likes: `likes` becomes
-- `PARTITION BY HASH (post_id)` with e.g. 64 partitions (a multiple of the 16 Redis shards, so
-- one stream's batch lands in 4 partitions and its transaction stays local); the primary key
-- (post_id, user_id) already contains the partition key, so idempotent ON CONFLICT upserts keep
-- working. `post_like_counts` stays small (one row per post) and is not partitioned. Beyond one
-- machine, the same hash of post_id routes to Citus/per-node databases, one per group of shards.

-- Users arrive on their own stream ({users}:events).
CREATE TABLE users (
    id         BIGINT      PRIMARY KEY,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Posts and their image variants. Filled by a later issue (post creation events); the like
-- path does not depend on them, so likes carry no foreign key to posts.
CREATE TABLE posts (
    id         BIGINT      PRIMARY KEY,
    author_id  BIGINT      NOT NULL,
    caption    TEXT        NOT NULL DEFAULT '',
    image_id   TEXT        NOT NULL,
    width      INTEGER     NOT NULL,
    height     INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- "posts by time" (sort=new), newest first with the id as tie-breaker for stable paging.
CREATE INDEX posts_by_time ON posts (created_at DESC, id DESC);

CREATE TABLE images (
    id           TEXT  NOT NULL,
    variant      TEXT  NOT NULL CHECK (variant IN ('thumb', 'full')),
    content_type TEXT  NOT NULL,
    etag         TEXT  NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    bytes        BYTEA NOT NULL,
    PRIMARY KEY (id, variant)
);

-- One row per current like. No foreign key to users: users come on a different stream than
-- likes, so a like may be applied before its user row exists; a placeholder user would invent
-- a name, so the reference is simply left unchecked (every user id comes from {users}:seq).
-- The primary key is also the "likes of a post" index (likers paged by user id).
CREATE TABLE likes (
    post_id    BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
-- "what does this user like" (liked_by_me on a page of posts, rehydrate per user).
CREATE INDEX likes_by_user ON likes (user_id, post_id);

-- The per-post count, changed in the same transaction as the like rows and only by rows that
-- really changed. Separate from `posts` because likes may reference posts not persisted yet.
-- No CHECK (likes >= 0): PostgreSQL checks the proposed INSERT row (a negative delta) before
-- ON CONFLICT turns it into an UPDATE; counts stay non-negative because they follow real rows.
CREATE TABLE post_like_counts (
    post_id    BIGINT      PRIMARY KEY,
    likes      BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- "posts by likes" (sort=top).
CREATE INDEX post_like_counts_top ON post_like_counts (likes DESC, post_id DESC);

-- The last stream entry applied per stream, written in the same transaction as the batch it
-- ends. A Redis stream id `ms-seq` is kept as two integers so ids compare numerically.
CREATE TABLE stream_checkpoints (
    stream     TEXT        PRIMARY KEY,
    last_ms    BIGINT      NOT NULL,
    last_seq   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Entries that could not be decoded (unknown schema version, garbage). Parked here in the
-- batch's transaction instead of blocking the stream or vanishing.
CREATE TABLE stream_dead_letters (
    stream    TEXT        NOT NULL,
    entry_id  TEXT        NOT NULL,
    fields    TEXT        NOT NULL,
    error     TEXT        NOT NULL,
    parked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, entry_id)
);
