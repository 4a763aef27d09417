-- Like or unlike a post, atomically: exact dedupe, count, recent likers, top index, stream
-- entry for the sync daemon and an SPUBLISH on the shard's channel for the realtime hub. A call
-- that changes nothing (a repeated like or unlike) writes nothing and emits nothing.
--
-- KEYS: 1 post hash, 2 likers (roaring), 3 recent likers list, 4 shard stream, 5 shard top zset
-- ARGV: 1 'like'|'unlike', 2 post id (bare), 3 user id (bare), 4 ts (RFC 3339),
--       5 '1' to require the post to exist, 6 schema version, 7 recent-likers cap,
--       8 the shard's like channel (same hash tag: one slot), 9 post id (wire form)
-- Returns {likes, changed (0|1)}, or the error `NOPOST` when ARGV[5] is '1' and the post is unknown.
local op, post, user, ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if ARGV[5] == '1' and redis.call('HEXISTS', KEYS[1], 'id') == 0 then
  return redis.error_reply('NOPOST no such post')
end
local uid = tonumber(user)
local changed
if op == 'like' then
  changed = r_add(KEYS[2], uid)
elseif op == 'unlike' then
  changed = r_remove(KEYS[2], uid)
else
  return redis.error_reply('ERR unknown op')
end
if not changed then
  return {tonumber(redis.call('HGET', KEYS[1], 'likes') or '0'), 0}
end
local n = redis.call('HINCRBY', KEYS[1], 'likes', op == 'like' and 1 or -1)
redis.call('LREM', KEYS[3], 0, user)
if op == 'like' then
  redis.call('LPUSH', KEYS[3], user)
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
end
redis.call('ZADD', KEYS[5], n, post)
redis.call('XADD', KEYS[4], '*', 'v', ARGV[6], 'kind', op, 'post', post, 'user', user, 'likes', n, 'ts', ts)
redis.call('SPUBLISH', ARGV[8], cjson.encode({post_id = ARGV[9], likes = n, ts = ts}))
return {n, 1}
