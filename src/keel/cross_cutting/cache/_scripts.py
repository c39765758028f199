"""The Lua scripts behind :class:`RedisCache`: each check-and-write is one atomic step on the server.

Guards come as key pairs: the guard's generation (a string) and its holds
(a sorted set of writer tokens scored by when they lapse, in server
milliseconds, so a writer that died holds nothing for longer than its lease).
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: value, epoch. ARGV: payload, ttl ms. Plain set, stamped with the epoch.
SET = """
local e = redis.call('GET', KEYS[2]) or '0'
redis.call('SET', KEYS[1], e .. '\\n' .. ARGV[1], 'PX', ARGV[2])
return 1
"""

#: KEYS: value, epoch, then (generation, holds) per guard. ARGV: stamp, payload, ttl ms.
#: Stores only when no writer holds a guard and the stamp is still the current one.
FILL = (
    _NOW
    + """
local parts = {redis.call('GET', KEYS[2]) or '0'}
for i = 3, #KEYS, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now)
  if redis.call('ZCARD', KEYS[i + 1]) > 0 then return 0 end
  parts[#parts + 1] = redis.call('GET', KEYS[i]) or ''
end
if table.concat(parts, '|') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], 'PX', ARGV[3])
return 1
"""
)

#: KEYS: (generation, holds) per guard. ARGV: token, lease ms, generation ttl ms, new generation.
BEGIN = (
    _NOW
    + """
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i + 1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i + 1], ARGV[2])
  redis.call('SET', KEYS[i], ARGV[4], 'PX', ARGV[3])
end
return 1
"""
)

#: KEYS: (generation, holds) per guard. ARGV: token, generation ttl ms, new generation.
END = """
for i = 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[1])
  redis.call('SET', KEYS[i], ARGV[3], 'PX', ARGV[2])
end
return 1
"""
