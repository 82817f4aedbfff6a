/**
 * Presence views (Phoenix's `presence.js`): a snapshot from `~who`, kept current by diffs.
 *
 * - `Directory`: the available, aliased connections (`~who {}` + `~peer` updates).
 * - `TopicPresence`: a topic's subscribers (`~who {topic}` + `~presence` diffs).
 *
 * Diffs that arrive while a snapshot is being fetched are held and applied on top of it, in
 * order: each peer then ends in the state of the latest news about it, whichever came last.
 *
 * The directory also knows which entries are this client's own: its current connection is shown
 * as the server last described it (the reply to `~status`, or a `~peer` about it), and its
 * earlier connections, dead since a reconnect, are never shown again (the server may still list
 * one for a moment, until it notices the old socket is gone).
 */
import { Emitter } from "./emitter.js";
import { SwitchboardError } from "./errors.js";
import type { Peer, PeerUpdate } from "./types.js";

export type PresenceEvents = {
  /** A snapshot was loaded (after `sync()`, and again after every reconnect). */
  sync: readonly Peer[];
  join: Peer;
  leave: Peer;
  /** Any change: the full current list. */
  change: readonly Peer[];
  /** A background re-sync failed. */
  error: SwitchboardError;
};

interface Diff {
  readonly joins: readonly Peer[];
  readonly leaves: readonly Peer[];
}

/** Common part of the two views. */
abstract class PeerView {
  private readonly emitter = new Emitter<PresenceEvents>();
  private readonly byConn = new Map<string, Peer>();
  private held: Diff[] | null = null;
  private generation = 0;
  private synced = false;

  constructor(private readonly fetch: () => Promise<readonly Peer[]>) {}

  on<K extends keyof PresenceEvents>(event: K, listener: (payload: PresenceEvents[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  /** True once a snapshot was loaded. */
  get isSynced(): boolean {
    return this.synced;
  }

  /** The current peers. */
  list(): Peer[] {
    return [...this.byConn.values()];
  }

  get(conn: string): Peer | undefined {
    return this.byConn.get(conn);
  }

  /** The peers of one user (all of their devices). */
  byUser(user: string): Peer[] {
    return this.list().filter((p) => p.user === user);
  }

  byAlias(alias: string): Peer | undefined {
    return this.list().find((p) => p.alias === alias);
  }

  /** Loads a fresh snapshot. */
  async sync(): Promise<Peer[]> {
    const generation = ++this.generation;
    this.held = [];
    let peers: readonly Peer[];
    try {
      peers = await this.fetch();
    } catch (err) {
      if (generation === this.generation) this.held = null;
      throw err;
    }
    if (generation !== this.generation) return this.list(); // a newer sync won
    const held = this.held ?? [];
    this.held = null;
    this.byConn.clear();
    for (const p of peers) if (isPeer(p) && this.admits(p)) this.byConn.set(p.conn, p);
    for (const diff of held) this.applyQuietly(diff);
    this.adjust(this.byConn);
    this.synced = true;
    const list = this.list();
    this.emitter.emit("sync", list);
    this.emitter.emit("change", list);
    return list;
  }

  /** Re-syncs in the background (after a reconnect); failures are emitted as `error`. */
  resync(): void {
    this.sync().catch((err: unknown) => {
      if (err instanceof SwitchboardError && err.code === "DISCONNECTED") return;
      this.emitter.emit("error", err instanceof SwitchboardError ? err : new SwitchboardError("FAILED", String(err)));
    });
  }

  protected applyDiff(diff: Diff): void {
    if (this.held !== null) {
      this.held.push(diff);
      return;
    }
    const { joined, left } = this.applyQuietly(diff);
    for (const p of left) this.emitter.emit("leave", p);
    for (const p of joined) this.emitter.emit("join", p);
    if (joined.length + left.length > 0) this.emitter.emit("change", this.list());
  }

  private applyQuietly(diff: Diff): { joined: Peer[]; left: Peer[] } {
    const joined: Peer[] = [];
    const left: Peer[] = [];
    for (const p of diff.leaves) {
      if (isPeer(p) && this.byConn.delete(p.conn)) left.push(p);
    }
    for (const p of diff.joins) {
      if (!isPeer(p) || !this.admits(p)) continue;
      this.byConn.set(p.conn, p);
      joined.push(p);
    }
    return { joined, left };
  }

  /** Whether a peer that the server announces or lists may be shown (all, unless overridden). */
  protected admits(_peer: Peer): boolean {
    return true;
  }

  /** Corrects a freshly loaded snapshot before it is shown (nothing, unless overridden). */
  protected adjust(_byConn: Map<string, Peer>): void {}

  /** Forgets everything (the client closed). */
  protected reset(): void {
    this.generation++;
    this.held = null;
    this.byConn.clear();
    this.synced = false;
  }
}

function isPeer(p: unknown): p is Peer {
  return typeof p === "object" && p !== null && typeof (p as { conn?: unknown }).conn === "string";
}

function peersOf(reply: unknown): Peer[] {
  const peers = (reply as { peers?: unknown } | null)?.peers;
  return Array.isArray(peers) ? peers.filter(isPeer) : [];
}

/** Our former connections remembered, so that the server's late news of them is ignored. */
const FORMER_CONNS = 32;

/** Listed in the directory: online, available and aliased. */
const isListed = (p: Peer): boolean => p.available === true && typeof p.alias === "string";

/** The server's directory: who is online, available and has an alias. */
export class Directory extends PeerView {
  private tracking = false;
  /** Our current connection. */
  private self: string | undefined;
  /** Our connections before the last reconnects: dead, never shown again. */
  private readonly former = new Set<string>();
  /** Our current connection's profile as the server last told it (`~status` reply, `~peer`). */
  private own: Peer | undefined;

  /** @internal */
  constructor(who: () => Promise<unknown>) {
    super(() => who().then(peersOf));
  }

  /** Loads the directory and keeps it current, across reconnects, until `stop()`. */
  override sync(): Promise<Peer[]> {
    this.tracking = true;
    return super.sync();
  }

  /** Stops re-syncing after reconnects (updates still apply). */
  stop(): void {
    this.tracking = false;
  }

  /** @internal A connection was identified as `conn`: the previous one is gone for good. */
  connected(conn: string): void {
    if (this.self !== undefined && this.self !== conn) {
      this.former.add(this.self);
      if (this.former.size > FORMER_CONNS) this.former.delete(this.former.values().next().value as string);
    }
    this.self = conn;
    this.own = undefined;
    const gone = [...this.former].map((c) => this.get(c)).filter((p): p is Peer => p !== undefined);
    if (gone.length > 0) this.applyDiff({ joins: [], leaves: gone });
  }

  /** @internal */
  ready(): void {
    if (this.tracking) this.resync();
  }

  /** @internal A `~peer` update. */
  update(update: PeerUpdate): void {
    const { online, ...peer } = update;
    if (peer.conn === this.self) this.own = online ? peer : { ...peer, available: false };
    const listed = online && isListed(peer);
    this.applyDiff(listed ? { joins: [peer], leaves: [] } : { joins: [], leaves: [peer] });
  }

  /** @internal The server's reply to our `~status`: our own profile now. */
  status(peer: Peer): void {
    if (!isPeer(peer) || peer.conn !== this.self) return;
    const wasListed = this.own !== undefined ? isListed(this.own) : this.get(peer.conn) !== undefined;
    this.own = peer;
    const listed = isListed(peer);
    this.applyDiff(listed ? { joins: [peer], leaves: [] } : { joins: [], leaves: [peer] });
    // While not listed the server sent us no `~peer`: what we show may be stale.
    if (listed && !wasListed && this.tracking) this.resync();
  }

  protected override admits(peer: Peer): boolean {
    return !this.former.has(peer.conn);
  }

  protected override adjust(byConn: Map<string, Peer>): void {
    const own = this.own;
    if (own === undefined) return;
    if (isListed(own)) byConn.set(own.conn, own);
    else byConn.delete(own.conn);
  }

  /** @internal */
  clear(): void {
    this.tracking = false;
    this.self = undefined;
    this.own = undefined;
    this.former.clear();
    this.reset();
  }
}

/** The subscribers of one topic. */
export class TopicPresence extends PeerView {
  /** @internal */
  constructor(
    readonly topic: string,
    who: () => Promise<unknown>,
  ) {
    super(() => who().then(peersOf));
  }

  /** @internal A `~presence` diff. */
  diff(payload: { joins?: unknown; leaves?: unknown }): void {
    const list = (v: unknown): Peer[] => (Array.isArray(v) ? v.filter(isPeer) : []);
    this.applyDiff({ joins: list(payload.joins), leaves: list(payload.leaves) });
  }

  /** @internal */
  clear(): void {
    this.reset();
  }
}
