//! The Lua scripts (sent with EVALSHA; `redis::Script` loads them again after a Redis restart).
//!
//! Liveness: an *owner* (one `RedisBackends::connect`) keeps `{prefix}:alive:{owner}` alive; its
//! presence and user entries name it, and are listed in its set `{prefix}:o:{owner}` as
//! `KIND LEN ':' KEY CONN` (see `core::member`) so that a dead owner's entries can be swept.

use std::sync::LazyLock;

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r"
local function tomap(t)
  local m = {}
  for k = 1, #t, 2 do m[t[k]] = t[k + 1] end
  return m
end
local alive_cache = {}
local function alive(prefix, me, o)
  if o == me then return true end
  local a = alive_cache[o]
  if a == nil then
    a = redis.call('EXISTS', prefix .. o) == 1
    alive_cache[o] = a
  end
  return a
end
local function owner_of(v)
  return string.match(v, '^([^\n]*)\n')
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// KEYS: z, i, w, n, owned-set-of-owner. ARGV: conn, info, owner, member, owned-prefix.
pub(crate) static PRESENCE_JOIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conn, owner, member = ARGV[1], ARGV[3], ARGV[4]
local prev = redis.call('HGET', w, conn)
if prev and prev ~= owner then redis.call('SREM', ARGV[5] .. prev, member) end
if not redis.call('ZSCORE', z, conn) then
  redis.call('ZADD', z, redis.call('INCR', n), conn)
end
redis.call('HSET', i, conn, ARGV[2])
redis.call('HSET', w, conn, owner)
redis.call('SADD', KEYS[5], member)
return 1
",
    )
});

/// KEYS: z, i, w, n. ARGV: conn, member, owned-prefix.
pub(crate) static PRESENCE_LEAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conn = ARGV[1]
local prev = redis.call('HGET', w, conn)
if prev then redis.call('SREM', ARGV[3] .. prev, ARGV[2]) end
redis.call('ZREM', z, conn)
redis.call('HDEL', i, conn)
redis.call('HDEL', w, conn)
if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, i, w, n) end
return 1
",
    )
});

/// KEYS: z, i, w, n. ARGV: alive-prefix, owned-prefix, member-prefix, me.
/// Returns conn, info, conn, info… in join order; drops entries of dead owners.
pub(crate) static PRESENCE_LIST: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conns = redis.call('ZRANGE', z, 0, -1)
if #conns == 0 then return {} end
local infos = tomap(redis.call('HGETALL', i))
local owners = tomap(redis.call('HGETALL', w))
local out = {}
for _, c in ipairs(conns) do
  local o = owners[c]
  local info = infos[c]
  if o and info and alive(ARGV[1], ARGV[4], o) then
    out[#out + 1] = c
    out[#out + 1] = info
  else
    redis.call('ZREM', z, c)
    redis.call('HDEL', i, c)
    redis.call('HDEL', w, c)
    if o then redis.call('SREM', ARGV[2] .. o, ARGV[3] .. c) end
  end
end
if #out == 0 then redis.call('DEL', z, i, w, n) end
return out
",
    )
});

/// KEYS: z, h, n, owned-set-of-owner. ARGV: conn, node, owner, cap (0: none), policy (`e`|`r`),
/// alive-prefix, owned-prefix, member-prefix.
/// Returns `{'ok', evicted conn, its node, …}` or `{'limit'}`.
pub(crate) static USERS_REGISTER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local conn, node, owner, cap, policy = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local ap, op, mp = ARGV[6], ARGV[7], ARGV[8]
local vals = tomap(redis.call('HGETALL', h))
local function remove(c)
  local v = vals[c]
  redis.call('ZREM', z, c)
  redis.call('HDEL', h, c)
  if v then
    local o = owner_of(v)
    if o then redis.call('SREM', op .. o, mp .. c) end
  end
end
local live = {}
for _, c in ipairs(redis.call('ZRANGE', z, 0, -1)) do
  local v = vals[c]
  local o = v and owner_of(v)
  if c ~= conn and o and alive(ap, owner, o) then
    live[#live + 1] = c
  else
    remove(c)
  end
end
local out = {'ok'}
if cap > 0 and #live >= cap then
  if policy == 'r' then return {'limit'} end
  for k = 1, #live - cap + 1 do
    local c = live[k]
    out[#out + 1] = c
    out[#out + 1] = string.match(vals[c], '\n(.*)$') or ''
    remove(c)
  end
end
redis.call('ZADD', z, redis.call('INCR', n), conn)
redis.call('HSET', h, conn, owner .. '\n' .. node)
redis.call('SADD', KEYS[4], mp .. conn)
return out
",
    )
});

/// KEYS: z, h, n. ARGV: conn, owned-prefix, member.
pub(crate) static USERS_UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local v = redis.call('HGET', h, ARGV[1])
if v then
  local o = owner_of(v)
  if o then redis.call('SREM', ARGV[2] .. o, ARGV[3]) end
end
redis.call('ZREM', z, ARGV[1])
redis.call('HDEL', h, ARGV[1])
if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, h, n) end
return 1
",
    )
});

/// KEYS: z, h, n. ARGV: alive-prefix, owned-prefix, member-prefix, me.
/// Returns conn, node, conn, node… in registration order; drops entries of dead owners.
pub(crate) static USERS_LIST: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local conns = redis.call('ZRANGE', z, 0, -1)
if #conns == 0 then return {} end
local vals = tomap(redis.call('HGETALL', h))
local out = {}
for _, c in ipairs(conns) do
  local v = vals[c]
  local o = v and owner_of(v)
  if o and alive(ARGV[1], ARGV[4], o) then
    out[#out + 1] = c
    out[#out + 1] = string.match(v, '\n(.*)$') or ''
  else
    redis.call('ZREM', z, c)
    redis.call('HDEL', h, c)
    if o then redis.call('SREM', ARGV[2] .. o, ARGV[3] .. c) end
  end
end
if #out == 0 then redis.call('DEL', z, h, n) end
return out
",
    )
});

/// KEYS: owners. ARGV: prefix, batch. Removes the entries of owners whose heartbeat expired
/// (at most about `batch` per call); returns how many were looked at.
pub(crate) static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local p = ARGV[1]
local batch = tonumber(ARGV[2])
local swept = 0
for _, o in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if swept >= batch then break end
  if redis.call('EXISTS', p .. ':alive:' .. o) == 0 then
    local set = p .. ':o:' .. o
    for _, m in ipairs(redis.call('SPOP', set, batch)) do
      local kind, len = string.match(m, '^(%a)(%d+):')
      if kind then
        local start = 3 + #len
        local key = string.sub(m, start, start + tonumber(len) - 1)
        local conn = string.sub(m, start + tonumber(len))
        if kind == 'p' then
          local b = p .. ':p:{' .. key .. '}'
          if redis.call('HGET', b .. ':w', conn) == o then
            redis.call('ZREM', b .. ':z', conn)
            redis.call('HDEL', b .. ':i', conn)
            redis.call('HDEL', b .. ':w', conn)
            if redis.call('ZCARD', b .. ':z') == 0 then
              redis.call('DEL', b .. ':z', b .. ':i', b .. ':w', b .. ':n')
            end
          end
        elseif kind == 'u' then
          local b = p .. ':u:{' .. key .. '}'
          local v = redis.call('HGET', b .. ':h', conn)
          if v and owner_of(v) == o then
            redis.call('ZREM', b .. ':z', conn)
            redis.call('HDEL', b .. ':h', conn)
            if redis.call('ZCARD', b .. ':z') == 0 then
              redis.call('DEL', b .. ':z', b .. ':h', b .. ':n')
            end
          end
        end
      end
      swept = swept + 1
    end
    if redis.call('SCARD', set) == 0 then redis.call('SREM', KEYS[1], o) end
  end
end
return swept
",
    )
});

/// Makes sure the topic's epoch exists (a lost one is replaced by `candidate`, and the stream of
/// the lost epoch goes); `m`, `s` and `candidate` must be locals.
const ENSURE_EPOCH: &str = r"
local epoch = redis.call('HGET', m, 'e')
if not epoch then
  epoch = candidate
  redis.call('DEL', s)
  redis.call('HSET', m, 'e', epoch, 's', 0)
end
";

const NOW_MS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// KEYS: m, s. ARGV: data, size, ttl ms (0: none), idle ms, epoch candidate.
/// Returns `{epoch, seq}`.
pub(crate) static HISTORY_APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
local m, s, candidate = KEYS[1], KEYS[2], ARGV[5]
{ENSURE_EPOCH}
local seq = redis.call('HINCRBY', m, 's', 1)
local size, ttl, idle = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if size > 0 then
  local exp = 0
  if ttl > 0 then exp = now_ms() + ttl end
  redis.call('XADD', s, 'MAXLEN', size, seq .. '-1', 'd', ARGV[1], 'x', exp)
  if ttl > 0 and ttl < idle then redis.call('PEXPIRE', s, ttl) else redis.call('PEXPIRE', s, idle) end
end
redis.call('PEXPIRE', m, idle)
return {{epoch, seq}}
"
    ))
});

/// KEYS: m, s. ARGV: idle ms, epoch candidate. Returns `{epoch, seq}`.
pub(crate) static HISTORY_POSITION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
local m, s, candidate = KEYS[1], KEYS[2], ARGV[2]
{ENSURE_EPOCH}
local seq = tonumber(redis.call('HGET', m, 's'))
redis.call('PEXPIRE', m, tonumber(ARGV[1]))
return {{epoch, seq}}
"
    ))
});

/// KEYS: m, s. ARGV: since epoch, since seq, idle ms, epoch candidate.
/// Returns `{epoch, seq, complete (0|1), seq, data, seq, data…}`.
pub(crate) static HISTORY_RECOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
local m, s, candidate = KEYS[1], KEYS[2], ARGV[4]
{ENSURE_EPOCH}
local seq = tonumber(redis.call('HGET', m, 's'))
redis.call('PEXPIRE', m, tonumber(ARGV[3]))
local since = tonumber(ARGV[2])
if epoch ~= ARGV[1] or since == nil or since > seq then return {{epoch, seq, 0}} end
if since == seq then return {{epoch, seq, 1}} end
local now = now_ms()
local out = {{epoch, seq, 0}}
local count = 0
for _, e in ipairs(redis.call('XRANGE', s, (since + 1) .. '-0', '+')) do
  local f = e[2]
  local data, exp = nil, 0
  for k = 1, #f, 2 do
    if f[k] == 'd' then data = f[k + 1] elseif f[k] == 'x' then exp = tonumber(f[k + 1]) end
  end
  if data and (exp == 0 or exp > now) then
    out[#out + 1] = string.match(e[1], '^(%d+)')
    out[#out + 1] = data
    count = count + 1
  end
end
if count == seq - since then out[3] = 1 end
return out
"
    ))
});
