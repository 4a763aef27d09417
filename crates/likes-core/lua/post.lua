-- Create a post, atomically: the record, both feed indexes of its shard, the stream entry for the
-- sync daemon and an SPUBLISH on the shard's channel for the realtime hub. Creating an id that
-- exists changes nothing and emits nothing, so a retried call is harmless.
--
-- KEYS: 1 post hash, 2 shard `new` index, 3 shard `top` index, 4 shard stream
-- ARGV: 1 post id (bare), 2 author id (bare), 3 author name, 4 caption, 5 image id, 6 width,
--       7 height, 8 created_at (RFC 3339), 9 schema version, 10 the shard's post channel,
--       11 the message to publish (the post as JSON)
-- Returns 1 when the post was created, 0 when it already existed.
if redis.call('HEXISTS', KEYS[1], 'id') == 1 then
  return 0
end
local likes = tonumber(redis.call('HGET', KEYS[1], 'likes') or '0')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'likes', likes, 'author', ARGV[2], 'author_name', ARGV[3],
  'caption', ARGV[4], 'image', ARGV[5], 'width', ARGV[6], 'height', ARGV[7], 'created_at', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[3], likes, ARGV[1])
redis.call('XADD', KEYS[4], '*', 'v', ARGV[9], 'kind', 'post', 'post', ARGV[1], 'user', ARGV[2],
  'name', ARGV[3], 'caption', ARGV[4], 'image', ARGV[5], 'width', ARGV[6], 'height', ARGV[7],
  'ts', ARGV[8])
redis.call('SPUBLISH', ARGV[10], ARGV[11])
return 1
