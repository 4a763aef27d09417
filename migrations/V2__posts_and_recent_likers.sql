-- Post creation events (issue 4, step 2): what the sync daemon needs so `rehydrate` can rebuild
-- Redis exactly as the edge served it.

-- The author's display name as the post record carries it (a snapshot, like the Redis hash),
-- so a post never depends on its author's user event having been applied first.
ALTER TABLE posts ADD COLUMN author_name TEXT NOT NULL DEFAULT '';

-- The post's recent likers list, newest first, capped like Redis's `{sN}:recent:<id>`. The
-- daemon replays the like script's list operations (LREM, LPUSH, LTRIM) on it in stream order,
-- because the order within a millisecond and the holes unlikes leave cannot be derived from the
-- like rows.
ALTER TABLE post_like_counts ADD COLUMN recent_likers BIGINT[] NOT NULL DEFAULT '{}';

-- Counts recorded before this migration get the best list the rows allow: the newest likers
-- (ties by user id), capped at 8 (`likes_core::scripts::RECENT_LIKERS_CAP`).
UPDATE post_like_counts c
SET recent_likers = ARRAY(
    SELECT l.user_id FROM likes l WHERE l.post_id = c.post_id
    ORDER BY l.created_at DESC, l.user_id DESC LIMIT 8)
WHERE c.likes > 0;
