-- One page of a post's likers, in ascending user id order.
--
-- KEYS: 1 likers (roaring), 2 the post hash; ARGV: 1 return ids strictly greater than this
-- (0 = from the start), 2 page size. Returns the user ids (bare integers), or the error
-- `NOPOST` when the post does not exist (an unknown post has no likers page: 404).
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('NOPOST no such post')
end
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local his = redis.call('HKEYS', KEYS[1])
local nums = {}
for i, h in ipairs(his) do nums[i] = tonumber(h) end
table.sort(nums)
local out = {}
local ahi, alo = r_split(after)
for _, hi in ipairs(nums) do
  if #out >= limit then break end
  if hi >= ahi then
    local c = redis.call('HGET', KEYS[1], hi)
    local from = 0
    if hi == ahi then from = alo + 1 end
    local base = hi * 65536
    if #c == R_BITMAP_LEN then
      local pos = math.floor(from / 8) + 1
      while #out < limit do
        pos = string.find(c, '[^%z]', pos)
        if not pos then break end
        local byte = string.byte(c, pos)
        for b = 0, 7 do
          local lo = (pos - 1) * 8 + b
          if lo >= from and bit.band(byte, bit.rshift(128, b)) ~= 0 then
            out[#out + 1] = base + lo
            if #out >= limit then break end
          end
        end
        pos = pos + 1
      end
    else
      local i = r_arr_find(c, from)
      local n = #c / 2
      while i < n and #out < limit do
        out[#out + 1] = base + r_arr_get(c, i)
        i = i + 1
      end
    end
  end
end
return out
