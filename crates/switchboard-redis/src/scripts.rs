//! The Lua scripts (sent with EVALSHA; `redis::Script` loads them again after a Redis restart).
//!
//! Every script touches the keys of ONE hash slot (one topic, one presence key or one user:
//! their keys share a hash tag), so that they run on a Redis Cluster as on one Redis. No script
//! reads another owner's heartbeat: liveness is decided by the caller (see `core`), and a script
//! is told which owners are dead — a verdict that is final, since an owner id never comes back
//! once its heartbeat key expired.

use std::sync::LazyLock;

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r"
local function tomap(t)
  local m = {}
  for k = 1, #t, 2 do m[t[k]] = t[k + 1] end
  return m
end
local function owner_of(v)
  return string.match(v, '^([^\n]*)\n')
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// KEYS: z, i, w, n. ARGV: conn, info, owner.
pub(crate) static PRESENCE_JOIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conn = ARGV[1]
if not redis.call('ZSCORE', z, conn) then
  redis.call('ZADD', z, redis.call('INCR', n), conn)
end
redis.call('HSET', i, conn, ARGV[2])
redis.call('HSET', w, conn, ARGV[3])
return 1
",
    )
});

/// KEYS: z, i, w, n. ARGV: conn. Returns the entry's owner (or nil).
pub(crate) static PRESENCE_LEAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local conn = ARGV[1]
local prev = redis.call('HGET', w, conn)
redis.call('ZREM', z, conn)
redis.call('HDEL', i, conn)
redis.call('HDEL', w, conn)
if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, i, w, n) end
return prev
",
    )
});

/// KEYS: z, i, w, n. Returns conn, info, owner, conn, info, owner… in join order (an entry
/// without info or owner is dropped).
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
  if o and info then
    out[#out + 1] = c
    out[#out + 1] = info
    out[#out + 1] = o
  else
    redis.call('ZREM', z, c)
    redis.call('HDEL', i, c)
    redis.call('HDEL', w, c)
  end
end
if #out == 0 then redis.call('DEL', z, i, w, n) end
return out
",
    )
});

/// KEYS: z, i, w, n. ARGV: conn, owner, conn, owner… — removes each entry still owned by that
/// (dead) owner. Returns the connections removed.
pub(crate) static PRESENCE_PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local gone = {}
for k = 1, #ARGV, 2 do
  local c = ARGV[k]
  if redis.call('HGET', w, c) == ARGV[k + 1] then
    redis.call('ZREM', z, c)
    redis.call('HDEL', i, c)
    redis.call('HDEL', w, c)
    gone[#gone + 1] = c
  end
end
if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, i, w, n) end
return gone
",
    )
});

/// KEYS: z, i, w, n. ARGV: conn… — removes each of these entries (a dead node's). Returns conn,
/// info, owner, conn, info, owner… of those it removed (none twice, whoever else removes them).
pub(crate) static PRESENCE_EVICT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, i, w, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local out = {}
for _, c in ipairs(ARGV) do
  if redis.call('ZREM', z, c) == 1 then
    out[#out + 1] = c
    out[#out + 1] = redis.call('HGET', i, c) or ''
    out[#out + 1] = redis.call('HGET', w, c) or ''
  end
  redis.call('HDEL', i, c)
  redis.call('HDEL', w, c)
end
if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, i, w, n) end
return out
",
    )
});

/// KEYS: z, h, n. ARGV: conn, node, owner, cap (0: none), policy (`e`|`r`), dead owners….
/// Entries of the dead owners are dropped; every other entry counts against the cap.
/// Returns `{'ok', connections after, evicted conn, its node, its owner, …}` or `{'limit'}`.
pub(crate) static USERS_REGISTER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local conn, node, owner, cap, policy = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local dead = {}
for k = 6, #ARGV do dead[ARGV[k]] = true end
local vals = tomap(redis.call('HGETALL', h))
local function remove(c)
  redis.call('ZREM', z, c)
  redis.call('HDEL', h, c)
end
local live = {}
for _, c in ipairs(redis.call('ZRANGE', z, 0, -1)) do
  local v = vals[c]
  local o = v and owner_of(v)
  if c ~= conn and o and not dead[o] then
    live[#live + 1] = c
  else
    remove(c)
  end
end
local out = {'ok', 0}
local count = #live
if cap > 0 and #live >= cap then
  if policy == 'r' then return {'limit'} end
  for k = 1, #live - cap + 1 do
    local c = live[k]
    out[#out + 1] = c
    out[#out + 1] = string.match(vals[c], '\n(.*)$') or ''
    out[#out + 1] = owner_of(vals[c])
    remove(c)
    count = count - 1
  end
end
redis.call('ZADD', z, redis.call('INCR', n), conn)
redis.call('HSET', h, conn, owner .. '\n' .. node)
out[2] = count + 1
return out
",
    )
});

/// KEYS: z, h, n. ARGV: conn. Returns `{owner, node, connections left}` (owner and node nil
/// when the connection was not registered).
pub(crate) static USERS_UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local v = redis.call('HGET', h, ARGV[1])
redis.call('ZREM', z, ARGV[1])
redis.call('HDEL', h, ARGV[1])
local left = redis.call('ZCARD', z)
if left == 0 then redis.call('DEL', z, h, n) end
if v then return {owner_of(v) or '', string.match(v, '\n(.*)$') or '', left} end
return {false, false, left}
",
    )
});

/// KEYS: z, h, n. Returns conn, node, owner, conn, node, owner… in registration order.
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
  if o then
    out[#out + 1] = c
    out[#out + 1] = string.match(v, '\n(.*)$') or ''
    out[#out + 1] = o
  else
    redis.call('ZREM', z, c)
    redis.call('HDEL', h, c)
  end
end
if #out == 0 then redis.call('DEL', z, h, n) end
return out
",
    )
});

/// KEYS: z, h, n. ARGV: conn, owner, conn, owner… — removes each entry still owned by that
/// (dead) owner. Returns conn, node, conn, node… of those removed.
pub(crate) static USERS_PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local gone = {}
for k = 1, #ARGV, 2 do
  local c = ARGV[k]
  local v = redis.call('HGET', h, c)
  if v and owner_of(v) == ARGV[k + 1] then
    redis.call('ZREM', z, c)
    redis.call('HDEL', h, c)
    gone[#gone + 1] = c
    gone[#gone + 1] = string.match(v, '\n(.*)$') or ''
  end
end
if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, h, n) end
return gone
",
    )
});

/// KEYS: z, h, n. ARGV: node. Removes every connection of the user registered with that node.
/// Returns `{connections left, conn, owner, conn, owner…}` of those it removed.
pub(crate) static USERS_EVICT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local z, h, n = KEYS[1], KEYS[2], KEYS[3]
local vals = tomap(redis.call('HGETALL', h))
local out = {0}
for _, c in ipairs(redis.call('ZRANGE', z, 0, -1)) do
  local v = vals[c]
  if v and string.match(v, '\n(.*)$') == ARGV[1] then
    redis.call('ZREM', z, c)
    redis.call('HDEL', h, c)
    out[#out + 1] = c
    out[#out + 1] = owner_of(v) or ''
  end
end
local left = redis.call('ZCARD', z)
if left == 0 then redis.call('DEL', z, h, n) end
out[1] = left
return out
",
    )
});

/// Node liveness, all keys of one node (`{P:N:NODE}`): `a` alive (expires after the beat's
/// ttl), `k` tracked (`1`: it beat; `2`: its cleanup was claimed since it lapsed), `c` the
/// claimer (expires after the lease), `x` tombstone (cleaned up; expires), `v` the last beat's
/// token and verdict (expires).
///
/// KEYS: a, k, c, x, v. ARGV: ttl ms, first (`1`: this process never beat for the node), token,
/// lost token (`''`: none), keep ms. Returns 0 alive, 1 lapsed, 2 lapsed and cleaned up (or
/// being cleaned up). When the beat with the lost token ran (its answer was lost), its verdict
/// counts too: a lapse is never reported as `alive` because its answer went missing.
pub(crate) static NODE_BEAT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local a, k, c, x, v = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local alive = redis.call('EXISTS', a) == 1
local tracked = redis.call('GET', k)
local tomb = redis.call('EXISTS', x) == 1
local last = redis.call('GET', v)
redis.call('SET', a, 1, 'PX', ARGV[1])
redis.call('SET', k, 1)
redis.call('DEL', c, x)
local r = 0
if alive then r = 0
elseif tomb or tracked == '2' then r = 2
elseif tracked or ARGV[2] == '0' then r = 1
end
if ARGV[4] ~= '' and last then
  local t, was = string.match(last, '^(.*) (%d)$')
  if t == ARGV[4] and tonumber(was) > r then r = tonumber(was) end
end
redis.call('SET', v, ARGV[3] .. ' ' .. r, 'PX', ARGV[5])
return r
",
    )
});

/// KEYS: a, k, c, x. Returns 0 alive, 1 lapsed, 2 lapsed with its cleanup claimed, 3 unknown
/// (never beat, detached, or lost), 4 cleaned up (tombstone).
pub(crate) static NODE_STATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local a, k, c, x = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', a) == 1 then return 0 end
local tracked = redis.call('GET', k)
if tracked == '2' then return 2 end
if tracked then return 1 end
if redis.call('EXISTS', x) == 1 then return 4 end
return 3
",
    )
});

/// KEYS: a, k, c. ARGV: claimer, lease ms. Claims (or renews) the cleanup of a lapsed node:
/// 1, or 0 if it is alive, unknown, or claimed by another.
pub(crate) static NODE_CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local a, k, c = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', a) == 1 or not redis.call('GET', k) then return 0 end
local holder = redis.call('GET', c)
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', c, ARGV[1], 'PX', ARGV[2])
redis.call('SET', k, 2)
return 1
",
    )
});

/// KEYS: a, k, c, x. ARGV: tombstone ms. A lapsed node's cleanup is finished: it is no longer
/// tracked, and a tombstone tells its late beat. Returns 0 if it is alive again, else 1.
pub(crate) static NODE_FORGET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local a, k, c, x = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', a) == 1 then return 0 end
if redis.call('EXISTS', k) == 1 then
  redis.call('DEL', k, c)
  redis.call('SET', x, 1, 'PX', ARGV[1])
end
return 1
",
    )
});

/// KEYS: a, k, c. A node that detaches while alive is no longer tracked (it never turns dead).
/// Returns 1 if it was alive, else 0.
pub(crate) static NODE_DETACH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local a, k, c = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', a) == 0 then return 0 end
redis.call('DEL', a, k, c)
return 1
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

/// KEYS: m, s, k. ARGV: data, size, ttl ms (0: none), idle ms, epoch candidate, key ('': none).
/// Returns `{epoch, seq, duplicate (0|1)}`.
///
/// `k` maps an idempotency key to the sequence number of the kept publication that carried it
/// (whose stream entry also holds the key, field `k`): a mapping whose entry is gone (pushed out,
/// expired, or from a lost epoch) or holds another key is stale and dropped. The entry `MAXLEN`
/// pushes out takes its key out of `k` with it.
pub(crate) static HISTORY_APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
local m, s, k, candidate = KEYS[1], KEYS[2], KEYS[3], ARGV[5]
{ENSURE_EPOCH}
local size, ttl, idle, key = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[6]
local function field(e, name)
  local f = e[2]
  for j = 1, #f, 2 do if f[j] == name then return f[j + 1] end end
  return nil
end
if key ~= '' and size > 0 then
  local prev = redis.call('HGET', k, key)
  if prev then
    local e = redis.call('XRANGE', s, prev .. '-1', prev .. '-1')[1]
    local exp = e and tonumber(field(e, 'x')) or 0
    if e and field(e, 'k') == key and (exp == 0 or exp > now_ms()) then
      return {{epoch, tonumber(prev), 1}}
    end
    redis.call('HDEL', k, key)
  end
end
local seq = redis.call('HINCRBY', m, 's', 1)
if size > 0 then
  local exp = 0
  if ttl > 0 then exp = now_ms() + ttl end
  local over = redis.call('XLEN', s) - size + 1
  if over > 0 and redis.call('EXISTS', k) == 1 then
    for _, e in ipairs(redis.call('XRANGE', s, '-', '+', 'COUNT', over)) do
      local old = field(e, 'k')
      if old then redis.call('HDEL', k, old) end
    end
  end
  if key ~= '' then
    redis.call('XADD', s, 'MAXLEN', size, seq .. '-1', 'd', ARGV[1], 'x', exp, 'k', key)
    redis.call('HSET', k, key, seq)
  else
    redis.call('XADD', s, 'MAXLEN', size, seq .. '-1', 'd', ARGV[1], 'x', exp)
  end
  local keep = idle
  if ttl > 0 and ttl < idle then keep = ttl end
  redis.call('PEXPIRE', s, keep)
  if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, idle) end
end
redis.call('PEXPIRE', m, idle)
return {{epoch, seq, 0}}
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

/// The event log, all keys of one partition (`{P:ev:N}`): `s` the stream of the events not
/// committed yet (fields `k` key, `q` its number in the key's sequence, `d` data), `q:KEY` each
/// key's counter.
///
/// KEYS: s, q (the key's counter). ARGV: key, data, max events kept. Appends unless the stream
/// holds `max` already (then nil): the counter is incremented and kept without expiry while the
/// key has events not committed (`EVENTS_COMMIT` gives it one). Returns `{stream id, seq}`.
pub(crate) static EVENTS_APPEND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s, q = KEYS[1], KEYS[2]
if redis.call('XLEN', s) >= tonumber(ARGV[3]) then return false end
local seq = redis.call('INCR', q)
redis.call('PERSIST', q)
local id = redis.call('XADD', s, '*', 'k', ARGV[1], 'q', seq, 'd', ARGV[2])
return {id, seq}
",
    )
});

/// KEYS: l (the partition's lease). ARGV: holder, ttl ms. Takes the lease if nobody holds it,
/// renews it if `holder` does: 1; else 0.
pub(crate) static EVENTS_LEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local l = KEYS[1]
local holder = redis.call('GET', l)
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', l, ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

/// KEYS: s. ARGV: through (a stream id), the id right after it, the counters' key prefix
/// (`{P:ev:N}:q:`, same slot), idle ms. Trims the stream of every entry up to `through`; a key
/// whose last event (its counter's value) is among them gets an expiry of `idle` on its counter
/// (an append takes it off again). Returns how many entries were trimmed.
pub(crate) static EVENTS_COMMIT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local s = KEYS[1]
local last = {}
for _, e in ipairs(redis.call('XRANGE', s, '-', ARGV[1])) do
  local f = e[2]
  local k, q
  for j = 1, #f, 2 do
    if f[j] == 'k' then k = f[j + 1] elseif f[j] == 'q' then q = f[j + 1] end
  end
  if k and q then last[k] = q end
end
for k, q in pairs(last) do
  local c = ARGV[3] .. k
  if redis.call('GET', c) == q then redis.call('PEXPIRE', c, ARGV[4]) end
end
return redis.call('XTRIM', s, 'MINID', ARGV[2])
",
    )
});
