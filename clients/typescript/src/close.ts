/**
 * Close codes (protocol §8) and the reconnect policy derived from them.
 */

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  RECONNECT: 4000,
  HEARTBEAT_TIMEOUT: 4001,
  SLOW_CONSUMER: 4002,
  CREDENTIALS_EXPIRED: 4003,
  NOT_AUTHORIZED: 4500,
  PROTOCOL_ERROR: 4501,
  TOO_MANY_CONNECTIONS: 4502,
  KICKED: 4503,
  IDENTIFICATION_TIMEOUT: 4504,
} as const;

const meanings: Readonly<Record<number, string>> = {
  1000: "normal closure",
  1001: "server going away",
  1005: "closed without a status",
  1006: "connection lost",
  1009: "message too big",
  1011: "server error",
  1012: "server restarting",
  1013: "try again later",
  4000: "reconnect requested",
  4001: "heartbeat timeout",
  4002: "slow consumer",
  4003: "credentials expired",
  4500: "not authorized",
  4501: "protocol error",
  4502: "too many connections for this user",
  4503: "disconnected by the server",
  4504: "identification timeout",
};

/** A human description of a close code. */
export function describeClose(code: number): string {
  return meanings[code] ?? `close code ${code}`;
}

/**
 * The default policy: reconnect for 4000–4499 and for link failures (1001, 1005, 1006,
 * 1011–1014); stop for 4500–4999, a normal 1000 and every other protocol-level refusal.
 */
export function shouldReconnect(code: number): boolean {
  if (code >= 4000 && code <= 4499) return true;
  if (code >= 4500 && code <= 4999) return false;
  return code === 1001 || code === 1005 || code === 1006 || (code >= 1011 && code <= 1014);
}
