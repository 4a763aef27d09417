-- One page of the feed, or one post, with everything a client shows: the record, the live
-- count, whether the viewer likes it, and the most recent likers' ids.
--
-- KEYS: the shard indexes to read, all `new` or all `top` (every shard on one Redis; on a
-- cluster, the shards of one node, the caller merging the nodes' pages). Each post's own keys
-- are derived from its index key's hash tag, so the script only touches slots of its KEYS.
-- ARGV: 1 mode: 'new' | 'top' | 'one'
--       2 page size (ignored for 'one')
--       3 viewer user id (0 = anonymous)
--       4 recent likers to return per post
--       5 cursor: 'new' = return ids strictly below this (0 = from the newest);
--                 'top' = per-KEY offsets joined by '.' ('' = from the top);
--                 'one' = the post id (KEYS[1] is the index of its shard)
--       6, 7, 8 the kinds of a post's record, likers and recent keys (`keys::post_key`):
--                 a post's key is `<its index key's tag>:<kind>:<id>`
-- Returns a flat array (Spin's Redis interface has no nested replies):
--   next cursor ('' = no more), post count, then per post:
--   id, author, author_name, caption, image, width, height, created_at, likes, liked (0|1),
--   n, and n recent liker ids, newest first.
local mode, limit, viewer, nrecent = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local record, likers, recent = ARGV[6] .. ':', ARGV[7] .. ':', ARGV[8] .. ':'

local function prefix(index_key)
  return string.sub(index_key, 1, string.find(index_key, '}', 1, true) + 1)
end

-- picked: list of {key index, post id}
local picked, next_cursor = {}, ''

if mode == 'one' then
  picked[1] = {1, ARGV[5]}
elseif mode == 'new' then
  local before = tonumber(ARGV[5])
  local max = '+inf'
  if before > 0 then max = '(' .. before end
  local all = {}
  for k = 1, #KEYS do
    for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[k], max, '-inf', 'LIMIT', 0, limit + 1)) do
      all[#all + 1] = {k, id, tonumber(id)}
    end
  end
  table.sort(all, function(a, b) return a[3] > b[3] end)
  for i = 1, math.min(limit, #all) do picked[i] = all[i] end
  if #all > limit then next_cursor = picked[#picked][2] end
elseif mode == 'top' then
  -- A k-way merge in each shard's own order (score, then member, both descending), so the
  -- posts taken from a shard are always a prefix of what is left of it: the per-shard offsets
  -- in the cursor then continue exactly where this page stopped.
  local offsets = {}
  local k = 0
  for off in string.gmatch(ARGV[5], '%d+') do k = k + 1; offsets[k] = tonumber(off) end
  local heads, lists = {}, {}
  for k = 1, #KEYS do
    offsets[k] = offsets[k] or 0
    lists[k] = redis.call('ZREVRANGE', KEYS[k], offsets[k], offsets[k] + limit, 'WITHSCORES')
    heads[k] = 1
  end
  while #picked < limit do
    local best, bscore, bid = nil, nil, nil
    for k = 1, #KEYS do
      local l, h = lists[k], heads[k]
      if h < #l then
        local id, score = l[h], tonumber(l[h + 1])
        if best == nil or score > bscore or (score == bscore and id > bid) then
          best, bscore, bid = k, score, id
        end
      end
    end
    if best == nil then break end
    picked[#picked + 1] = {best, bid}
    heads[best] = heads[best] + 2
    offsets[best] = offsets[best] + 1
  end
  local more = false
  for k = 1, #KEYS do
    if heads[k] < #lists[k] then more = true end
  end
  if more then next_cursor = table.concat(offsets, '.') end
else
  return redis.error_reply('ERR unknown feed mode')
end

local out = {next_cursor, 0}
local count = 0
for _, p in ipairs(picked) do
  local pre = prefix(KEYS[p[1]])
  local id = p[2]
  local f = redis.call('HMGET', pre .. record .. id,
    'id', 'author', 'author_name', 'caption', 'image', 'width', 'height', 'created_at', 'likes')
  -- An index entry without a record (a post being rehydrated) is skipped, not shown half-made.
  if f[1] then
    for i = 1, 9 do out[#out + 1] = f[i] or '' end
    local liked = 0
    if viewer > 0 and r_contains(pre .. likers .. id, viewer) then liked = 1 end
    out[#out + 1] = liked
    local recent = redis.call('LRANGE', pre .. recent .. id, 0, nrecent - 1)
    out[#out + 1] = #recent
    for _, u in ipairs(recent) do out[#out + 1] = u end
    count = count + 1
  end
end
out[2] = count
return out
