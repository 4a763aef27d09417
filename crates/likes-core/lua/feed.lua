#!lua flags=no-writes,allow-cross-slot-keys
-- One node's part of a feed page, or one post, with everything a client shows: the record, the
-- live count, whether the viewer likes it, and the most recent likers' ids.
--
-- A page reads every shard's index. On one Redis the first call reaches them all; on a cluster
-- it reaches the shards of the node serving KEYS[1] and names the others, and the caller sends
-- the rest to the node of the first of them, and so on: one call per node. The caller then
-- merges the nodes' candidates with the same order as below (`scripts::FeedPage::merge`).
--
-- KEYS: 1 the first index of ARGV[9..]: it routes the call (the script reads ARGV's indexes,
--         any of which may be on another node: `allow-cross-slot-keys`, and `pcall` to tell).
-- ARGV: 1 mode: 'new' | 'top' | 'one'
--       2 page size (ignored for 'one')
--       3 viewer user id (0 = anonymous)
--       4 recent likers to return per post
--       5 cursor: 'new' = candidates strictly below this id (0 = from the newest);
--                 'top' = the offsets of ARGV[9..]'s indexes joined by '.' ('' = from the top);
--                 'one' = the post id (ARGV[9] is the index of its shard)
--       6, 7, 8 the kinds of a post's record, likers and recent keys (`keys::post_key`):
--                 a post's key is `<its index key's tag>:<kind>:<id>`
--       9..  the indexes to read, all `new` or all `top`
-- Returns a flat array (Spin's Redis interface has no nested replies):
--   more (1 = a reached index has candidates beyond these), u, u unreached positions (1-based
--   in ARGV[9..]), candidate count, then per candidate, in page order:
--   position, id, score, present (0|1: an index entry without a record, a post being
--   rehydrated, is a candidate that is not shown), and when present:
--   author, author_name, caption, image, width, height, created_at, likes, liked (0|1),
--   n, and n recent liker ids, newest first.
local mode, limit, viewer, nrecent = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local record, likers, recent = ARGV[6] .. ':', ARGV[7] .. ':', ARGV[8] .. ':'
local indexes = {}
for i = 9, #ARGV do indexes[#indexes + 1] = ARGV[i] end

local function prefix(index_key)
  return string.sub(index_key, 1, string.find(index_key, '}', 1, true) + 1)
end

-- Reads one index, or returns nil when another node serves it; any other error is raised.
local unreached = {}
local function read(k, ...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'non local key', 1, true) then
      unreached[#unreached + 1] = k
      return nil
    end
    return redis.error_reply(r.err)
  end
  return r
end

-- picked: list of {position, post id, score}
local picked, more = {}, 0

if mode == 'one' then
  picked[1] = {1, ARGV[5], 0}
elseif mode == 'new' then
  local before = tonumber(ARGV[5])
  local max = '+inf'
  if before > 0 then max = '(' .. before end
  local all = {}
  for k = 1, #indexes do
    local ids = read(k, 'ZREVRANGEBYSCORE', indexes[k], max, '-inf', 'LIMIT', 0, limit + 1)
    if ids and ids.err then return ids end
    for _, id in ipairs(ids or {}) do
      all[#all + 1] = {k, id, tonumber(id)}
    end
  end
  table.sort(all, function(a, b) return a[3] > b[3] end)
  for i = 1, math.min(limit, #all) do picked[i] = all[i] end
  if #all > limit then more = 1 end
elseif mode == 'top' then
  -- A k-way merge in each shard's own order (score, then member, both descending), so the
  -- posts taken from a shard are always a prefix of what is left of it: the per-shard offsets
  -- in the cursor then continue exactly where this page stopped.
  local offsets = {}
  local k = 0
  for off in string.gmatch(ARGV[5], '%d+') do k = k + 1; offsets[k] = tonumber(off) end
  local heads, lists = {}, {}
  for k = 1, #indexes do
    offsets[k] = offsets[k] or 0
    local l = read(k, 'ZREVRANGE', indexes[k], offsets[k], offsets[k] + limit, 'WITHSCORES')
    if l and l.err then return l end
    lists[k] = l or {}
    heads[k] = 1
  end
  while #picked < limit do
    local best, bscore, bid = nil, nil, nil
    for k = 1, #indexes do
      local l, h = lists[k], heads[k]
      if h < #l then
        local id, score = l[h], tonumber(l[h + 1])
        if best == nil or score > bscore or (score == bscore and id > bid) then
          best, bscore, bid = k, score, id
        end
      end
    end
    if best == nil then break end
    picked[#picked + 1] = {best, bid, bscore}
    heads[best] = heads[best] + 2
  end
  for k = 1, #indexes do
    if heads[k] < #lists[k] then more = 1 end
  end
else
  return redis.error_reply('ERR unknown feed mode')
end

local out = {more, #unreached}
for _, k in ipairs(unreached) do out[#out + 1] = k end
out[#out + 1] = #picked
for _, p in ipairs(picked) do
  local pre = prefix(indexes[p[1]])
  local id = p[2]
  local f = redis.call('HMGET', pre .. record .. id,
    'id', 'author', 'author_name', 'caption', 'image', 'width', 'height', 'created_at', 'likes')
  out[#out + 1] = p[1]
  out[#out + 1] = id
  out[#out + 1] = string.format('%d', p[3])
  if f[1] then
    out[#out + 1] = 1
    for i = 2, 9 do out[#out + 1] = f[i] or '' end
    local liked = 0
    if viewer > 0 and r_contains(pre .. likers .. id, viewer) then liked = 1 end
    out[#out + 1] = liked
    local rl = redis.call('LRANGE', pre .. recent .. id, 0, nrecent - 1)
    out[#out + 1] = #rl
    for _, u in ipairs(rl) do out[#out + 1] = u end
  else
    out[#out + 1] = 0
  end
end
return out
