//! [`RateLimiter`] on Redis: one hash per bucket, `{P:r:KEY}` (`l` milli-tokens, `t` when, in
//! Redis's own clock), taken from by one script, so that every node takes from the same bucket
//! atomically and no two clocks are compared. A bucket expires once it would be full again.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use switchboard_core::{BackendFuture, Grant, Rate, RateLimiter};

use crate::core::Core;

/// KEYS: the bucket. ARGV: want, per_second, burst. Returns `{granted, ms until the next token}`.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want, rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) * 1000
local b = redis.call('HMGET', KEYS[1], 'l', 't')
local level, at = tonumber(b[1]), tonumber(b[2])
if not level or not at then
  level, at = cap, now
end
if now > at then
  level = math.min(cap, level + (now - at) * rate)
  at = now
end
local granted = math.min(want, math.floor(level / 1000))
level = level - granted * 1000
local wait = 0
if level < 1000 then wait = math.ceil((1000 - level) / rate) end
redis.call('HSET', KEYS[1], 'l', level, 't', at)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - level) / rate) + 1000)
return {granted, wait}
",
    )
});

pub(crate) struct RedisRateLimiter {
    core: Arc<Core>,
}

impl RedisRateLimiter {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

impl RateLimiter for RedisRateLimiter {
    fn take(&self, key: &str, want: u32, rate: Rate) -> BackendFuture<'_, Grant> {
        let bucket = format!("{{{}:r:{key}}}", self.core.options.prefix);
        Box::pin(async move {
            let mut call = TAKE.prepare_invoke();
            call.key(bucket).arg(want).arg(rate.per_second).arg(rate.burst);
            let (granted, wait): (u32, u64) = self.core.invoke(&call).await?;
            let retry = if granted < want { Duration::from_millis(wait.max(1)) } else { Duration::ZERO };
            Ok(Grant::new(granted, retry))
        })
    }
}
