-- llmproxy's shared rate-limit decision: one atomic round trip per request.
--
-- The same token buckets as proxy/security/ratelimit.py (MemoryRateLimiter), kept in Redis so
-- every instance draws on one allowance. Two scopes, the client's key then everyone; each has
-- a requests bucket, a tokens bucket and a sorted set of in-flight leases (score: when the lease
-- expires, in ms, so a crashed instance's leases lapse on their own). Every bucket is checked
-- before any is charged, so a refused request costs nothing. Time is the Redis server's, so
-- hosts with skewed clocks still agree.
--
-- KEYS[1..3]: client scope  (requests bucket, tokens bucket, leases)
-- KEYS[4..6]: global scope  (the same three)
-- ARGV[1] tokens this request costs   ARGV[2] lease id   ARGV[3] lease lifetime (ms)
-- ARGV[4..6] client scope: requests per minute, tokens per minute, concurrent (0 = no limit)
-- ARGV[7..9] global scope: the same three
-- Returns {0} when admitted, else {scope (1 client, 2 global), dimension (1 concurrent,
-- 2 requests, 3 tokens), wait in ms} for the refusal with the longest wait.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local now_ms = math.floor(now * 1000)
local cost = tonumber(ARGV[1])
local lease = ARGV[2]
local lease_ms = tonumber(ARGV[3])

local refusal = nil
local charges = {}

local function refuse(scope, dimension, wait)
  if refusal == nil or wait > refusal[3] then
    refusal = {scope, dimension, wait}
  end
end

for scope = 1, 2 do
  local base = (scope - 1) * 3
  local concurrent = tonumber(ARGV[6 + base])
  if concurrent > 0 then
    local leases = KEYS[3 + base]
    redis.call('ZREMRANGEBYSCORE', leases, '-inf', now_ms)
    if redis.call('ZCARD', leases) >= concurrent then
      refuse(scope, 1, 1000)
    end
  end
  for dimension = 2, 3 do
    local capacity = tonumber(ARGV[4 + base + dimension - 2])
    local take = 1
    if dimension == 3 then take = cost end
    if capacity > 0 and take > 0 then
      local key = KEYS[1 + base + dimension - 2]
      local stored = redis.call('HMGET', key, 'level', 'updated')
      local level = tonumber(stored[1]) or capacity
      local updated = tonumber(stored[2]) or now
      local per_second = capacity / 60
      level = math.min(capacity, level + math.max(0, now - updated) * per_second)
      local need = math.min(take, capacity)
      if level < need then
        refuse(scope, dimension, math.ceil((need - level) / per_second * 1000))
      end
      charges[#charges + 1] = {key, level - take, capacity, per_second}
    end
  end
end

if refusal ~= nil then
  return refusal
end

for _, charge in ipairs(charges) do
  local key, level, capacity, per_second = charge[1], charge[2], charge[3], charge[4]
  redis.call('HSET', key, 'level', string.format('%.6f', level),
             'updated', string.format('%.6f', now))
  -- Gone once it would be full again: a missing bucket reads as full.
  redis.call('PEXPIRE', key, math.ceil((capacity - level) / per_second * 1000) + 1000)
end
for scope = 1, 2 do
  local base = (scope - 1) * 3
  if tonumber(ARGV[6 + base]) > 0 then
    redis.call('ZADD', KEYS[3 + base], now_ms + lease_ms, lease)
    redis.call('PEXPIRE', KEYS[3 + base], lease_ms)
  end
end
return {0}
