/**
 * The client's subscriptions: sends `~sub`/`~unsub`, resubscribes after every reconnect, routes
 * `~msg` and `~presence` to the right `Subscription`.
 */
import { SwitchboardError, timeoutError } from "./errors.js";
import { TopicPresence } from "./presence.js";
import { Subscription, type RecoveryInfo, type SubscriptionHost } from "./subscription.js";
import type { Clock, TimerHandle } from "./timer.js";
import type { Publication, StreamPosition, SubscribeReply } from "./types.js";

/** A request on the current connection; rejects `DISCONNECTED` when there is none. */
export interface Link {
  readonly ready: boolean;
  request<R>(type: string, payload: unknown, timeoutMs?: number): Promise<R>;
}

export interface SubscribeOptions<T> {
  /** Rejects with `TIMEOUT` if not subscribed in time (offline time included). */
  readonly timeoutMs?: number;
  /** Resume from a known position (e.g. one stored by the application). */
  readonly since?: StreamPosition;
  /** Added as a `message` listener before anything can be delivered. */
  readonly onMessage?: (pub: Publication<T>) => void;
}

interface Entry {
  readonly sub: Subscription<unknown>;
  inflight: boolean;
  presence?: TopicPresence;
  /** The first `subscribe()` call waits for this. */
  first?: | {
    readonly promise: Promise<Subscription<unknown>>;
    readonly resolve: (sub: Subscription<unknown>) => void;
    readonly reject: (err: SwitchboardError) => void;
    readonly timer: TimerHandle | undefined;
  }
    | undefined;
}

export class Topics implements SubscriptionHost {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly link: Link,
    private readonly clock: Clock,
    private readonly defaultTimeoutMs: number,
    private readonly onRecovery: (info: RecoveryInfo) => void,
  ) {}

  get topics(): string[] {
    return [...this.entries.keys()];
  }

  get(topic: string): Subscription<unknown> | undefined {
    return this.entries.get(topic)?.sub;
  }

  /** Subscribes (or joins the existing subscription of the same topic). */
  subscribe<T>(topic: string, options: SubscribeOptions<T> = {}): Promise<Subscription<T>> {
    let entry = this.entries.get(topic);
    if (entry === undefined) {
      entry = { sub: new Subscription<unknown>(topic, this, options.since), inflight: false };
      entry.sub.on("recovery", (info) => this.onRecovery(info));
      this.entries.set(topic, entry);
      this.startFirst(entry, options.timeoutMs ?? this.defaultTimeoutMs);
      if (this.link.ready) this.send(entry);
    }
    const sub = entry.sub as unknown as Subscription<T>;
    if (options.onMessage !== undefined) sub.on("message", options.onMessage);
    return entry.first === undefined ? Promise.resolve(sub) : (entry.first.promise as unknown as Promise<Subscription<T>>);
  }

  /** Resubscribes everything (a new connection is ready). */
  ready(): void {
    for (const entry of this.entries.values()) if (!entry.inflight) this.send(entry);
  }

  /** The connection dropped. */
  disconnected(): void {
    for (const entry of this.entries.values()) entry.sub.disconnected();
  }

  /** Routes a `~msg`. Returns false when no subscription of ours has that topic (a server-side group). */
  deliver(pub: Publication): boolean {
    const entry = this.entries.get(pub.topic);
    if (entry === undefined) return false;
    entry.sub.receive(pub);
    return true;
  }

  /** Routes a `~presence` diff. */
  presence(payload: { topic?: unknown; joins?: unknown; leaves?: unknown }): void {
    if (typeof payload.topic !== "string") return;
    this.entries.get(payload.topic)?.presence?.diff(payload);
  }

  presenceOf(sub: Subscription<unknown>): TopicPresence {
    const entry = this.entries.get(sub.topic);
    if (entry === undefined || entry.sub !== sub) throw new SwitchboardError("NOT_FOUND", `not subscribed to ${sub.topic}`);
    if (entry.presence === undefined) {
      entry.presence = new TopicPresence(sub.topic, () => this.link.request("~who", { topic: sub.topic }));
      if (sub.state === "active" && this.link.ready) entry.presence.resync();
    }
    return entry.presence;
  }

  async unsubscribe(sub: Subscription<unknown>): Promise<void> {
    const entry = this.entries.get(sub.topic);
    if (entry === undefined || entry.sub !== sub) return;
    this.remove(entry);
    if (this.link.ready) await this.ignoreDisconnect(this.link.request("~unsub", { topic: sub.topic }));
  }

  /** Leaves every topic equal to `prefix` or under `prefix/`, or all topics. */
  async unsubscribeAll(prefix?: string): Promise<void> {
    for (const entry of [...this.entries.values()]) {
      const t = entry.sub.topic;
      if (prefix === undefined || t === prefix || t.startsWith(`${prefix}/`)) this.remove(entry);
    }
    if (this.link.ready) {
      await this.ignoreDisconnect(this.link.request("~unsub", prefix === undefined ? {} : { prefix }));
    }
  }

  /** Ends every subscription (the client closed for good). */
  closeAll(error: SwitchboardError): void {
    for (const entry of [...this.entries.values()]) this.remove(entry, error);
  }

  private startFirst(entry: Entry, timeoutMs: number): void {
    let resolve!: (sub: Subscription<unknown>) => void;
    let reject!: (err: SwitchboardError) => void;
    const promise = new Promise<Subscription<unknown>>((res, rej) => ((resolve = res), (reject = rej)));
    const timer = Number.isFinite(timeoutMs)
      ? this.clock.setTimeout(() => {
          const err = timeoutError(`subscription to ${entry.sub.topic}`, timeoutMs);
          const wasInflight = entry.inflight;
          this.remove(entry, err);
          if (wasInflight && this.link.ready) void this.ignoreDisconnect(this.link.request("~unsub", { topic: entry.sub.topic }));
        }, timeoutMs)
      : undefined;
    entry.first = { promise, resolve, reject, timer };
  }

  private send(entry: Entry): void {
    entry.inflight = true;
    this.link.request<SubscribeReply>("~sub", entry.sub.request()).then(
      (reply) => {
        entry.inflight = false;
        if (this.entries.get(entry.sub.topic) !== entry) return;
        entry.sub.subscribed(reply);
        this.settleFirst(entry);
        entry.presence?.resync();
      },
      (err: unknown) => {
        entry.inflight = false;
        if (this.entries.get(entry.sub.topic) !== entry) return;
        const error = err instanceof SwitchboardError ? err : new SwitchboardError("FAILED", String(err));
        if (error.code === "DISCONNECTED") return entry.sub.disconnected(); // retried on the next ready
        entry.sub.failed();
        this.remove(entry, error);
      },
    );
  }

  private settleFirst(entry: Entry, error?: SwitchboardError): void {
    const first = entry.first;
    if (first === undefined) return;
    entry.first = undefined;
    if (first.timer !== undefined) this.clock.clearTimeout(first.timer);
    if (error === undefined) first.resolve(entry.sub);
    else first.reject(error);
  }

  private remove(entry: Entry, error?: SwitchboardError): void {
    if (this.entries.get(entry.sub.topic) === entry) this.entries.delete(entry.sub.topic);
    this.settleFirst(entry, error ?? new SwitchboardError("ABORTED", `unsubscribed from ${entry.sub.topic}`));
    entry.presence?.clear();
    entry.sub.close(error);
  }

  private async ignoreDisconnect(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (!(err instanceof SwitchboardError && err.code === "DISCONNECTED")) throw err;
    }
  }
}
