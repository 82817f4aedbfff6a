/**
 * One topic subscription that survives reconnects (Phoenix's `channel.js`, for topics).
 *
 * It remembers the last `epoch`/`seq` it delivered and resubscribes with them, so the server can
 * replay what was missed. Publications that arrive while a `~sub` is in flight are held and
 * delivered, in `seq` order within each epoch, once the reply says where the stream stands.
 * A publication whose `seq` was already delivered in the current epoch is dropped.
 *
 * Epochs (protocol §5): the epoch is the one of the `~sub` reply, then of the last delivery
 * that carried an `epoch`. A delivery with another epoch means the stream restarted (its history
 * was lost): it is delivered whatever its `seq`, counting starts again from it, and `recovery`
 * says `recovered: false` so the application reloads; the next resubscription asks for
 * `since: {epoch: <the new one>, seq}`.
 */
import { Emitter } from "./emitter.js";
import { SwitchboardError } from "./errors.js";
import type { TopicPresence } from "./presence.js";
import type { Publication, StreamPosition, SubscribeReply } from "./types.js";

export type SubscriptionState = "pending" | "active" | "resubscribing" | "closed";

/** Emitted for every `~sub` reply. */
export interface SubscribedInfo extends StreamPosition {
  readonly topic: string;
  /** True when the server replayed everything missed since the position we gave. */
  readonly recovered: boolean;
  /** True after a reconnect (false for the first subscription). */
  readonly resubscribed: boolean;
}

/**
 * Emitted after a reconnect: `recovered: false` means publications were lost, reload your state.
 * Also emitted with `recovered: false` when the topic's stream restarted while subscribed (the
 * server lost its history, e.g. a Redis restart): a delivery carried a new `epoch`, which this
 * event gives. Within one epoch a `seq` already delivered is a duplicate and is dropped.
 */
export interface RecoveryInfo extends StreamPosition {
  readonly topic: string;
  readonly recovered: boolean;
  /** Where the stream stood before the link dropped (or before it restarted). */
  readonly previous: StreamPosition;
}

export type SubscriptionEvents<T> = {
  message: Publication<T>;
  subscribed: SubscribedInfo;
  recovery: RecoveryInfo;
  /** The subscription ended (`unsubscribe()`, a refused resubscription, or the client closed). */
  closed: { readonly error?: SwitchboardError };
};

/** What a subscription needs from the client. */
export interface SubscriptionHost {
  unsubscribe(sub: Subscription<unknown>): Promise<void>;
  presenceOf(sub: Subscription<unknown>): TopicPresence;
}

export class Subscription<T = unknown> {
  private readonly emitter = new Emitter<SubscriptionEvents<T>>();
  private position: StreamPosition | undefined;
  private held: Publication<T>[] | null = null;
  private current: SubscriptionState = "pending";
  private everSubscribed = false;

  /** @internal Created by `SwitchboardClient.subscribe`. */
  constructor(
    readonly topic: string,
    private readonly host: SubscriptionHost,
    since?: StreamPosition,
  ) {
    this.position = since;
  }

  get state(): SubscriptionState {
    return this.current;
  }

  /** The epoch of the topic's history, once known. */
  get epoch(): string | undefined {
    return this.position?.epoch;
  }

  /** The last `seq` delivered (or the topic's `seq` when we subscribed). */
  get seq(): number | undefined {
    return this.position?.seq;
  }

  on<K extends keyof SubscriptionEvents<T>>(event: K, listener: (payload: SubscriptionEvents<T>[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  once<K extends keyof SubscriptionEvents<T>>(event: K, listener: (payload: SubscriptionEvents<T>[K]) => void): () => void {
    return this.emitter.once(event, listener);
  }

  /** The topic's presence, kept in sync from `~who {topic}` and `~presence` (created on first use). */
  get presence(): TopicPresence {
    return this.host.presenceOf(this as unknown as Subscription<unknown>);
  }

  /** Leaves the topic. */
  unsubscribe(): Promise<void> {
    return this.host.unsubscribe(this as unknown as Subscription<unknown>);
  }

  // ---- driven by the client -------------------------------------------------------------

  /** @internal The `~sub` payload for the next (re)subscription. */
  request(): { topic: string; since?: StreamPosition } {
    this.held ??= [];
    return this.position === undefined ? { topic: this.topic } : { topic: this.topic, since: this.position };
  }

  /** @internal The server answered `~sub`. */
  subscribed(reply: SubscribeReply): SubscribedInfo {
    const since = this.position;
    const resubscribed = this.everSubscribed;
    const recovered = since !== undefined && reply.recovered === true;
    const held = inOrder(this.held ?? []);
    this.held = null;
    this.everSubscribed = true;
    this.current = "active";
    // Recovered: the replay continues from `since` (before or after this reply). Otherwise the
    // stream restarts where the server says it stands now.
    this.position = recovered ? { epoch: reply.epoch, seq: since.seq } : { epoch: reply.epoch, seq: reply.seq };
    const info: SubscribedInfo = { topic: this.topic, epoch: reply.epoch, seq: reply.seq, recovered, resubscribed };
    this.emitter.emit("subscribed", info);
    if (resubscribed && since !== undefined) {
      this.emitter.emit("recovery", { topic: this.topic, epoch: reply.epoch, seq: reply.seq, recovered, previous: since });
    }
    for (const { pub, epoch } of held) this.deliver(pub, !recovered, epoch);
    return info;
  }

  /** @internal A publication of this topic arrived. */
  receive(pub: Publication<T>): void {
    if (this.current === "closed") return;
    if (this.held !== null) this.held.push(pub);
    else this.deliver(pub, false);
  }

  /** @internal The link dropped: the next ready resubscribes. */
  disconnected(): void {
    if (this.current === "active") this.current = "resubscribing";
    this.held = null;
  }

  /** @internal The `~sub` failed for a reason other than the link dropping. */
  failed(): void {
    this.held = null;
  }

  /** @internal */
  close(error?: SwitchboardError): void {
    if (this.current === "closed") return;
    this.current = "closed";
    this.held = null;
    this.emitter.emit("closed", error === undefined ? {} : { error });
    this.emitter.removeAll();
  }

  /** `epoch`: the publication's, or for a held one, the last announced before it. */
  private deliver(pub: Publication<T>, force: boolean, epoch = pub.epoch): void {
    const pos = this.position;
    if (typeof pub.seq === "number" && pos !== undefined) {
      if (typeof epoch === "string" && epoch !== pos.epoch) {
        // A new epoch (protocol §5): the stream restarted. Whatever its seq, this publication is
        // new; publications of the old epoch that we never got are lost: the application reloads.
        this.position = { epoch, seq: pub.seq };
        this.emitter.emit("recovery", { topic: this.topic, epoch, seq: pub.seq, recovered: false, previous: pos });
        this.emitter.emit("message", pub);
        return;
      }
      // The same epoch (a delivery names its epoch whenever it changed, protocol §5): a seq
      // already delivered is a duplicate.
      if (!force && pub.seq <= pos.seq) return;
      if (pub.seq > pos.seq) this.position = { epoch: pos.epoch, seq: pub.seq };
    }
    this.emitter.emit("message", pub);
  }
}

/**
 * Publications held during a `~sub`, in delivery order: by `seq` within an epoch, epochs in the
 * order they arrived. A publication without `epoch` belongs to the last one announced before it
 * (or to the reply's, if none was: `epoch` undefined).
 */
function inOrder<T>(held: Publication<T>[]): { pub: Publication<T>; epoch: string | undefined }[] {
  const group = new Map<string | undefined, number>([[undefined, 0]]);
  let current: string | undefined;
  const keyed = held.map((pub, i) => {
    if (typeof pub.epoch === "string") {
      current = pub.epoch;
      if (!group.has(current)) group.set(current, group.size);
    }
    return { pub, epoch: current, group: group.get(current) as number, i };
  });
  keyed.sort((a, b) => a.group - b.group || a.pub.seq - b.pub.seq || a.i - b.i);
  return keyed.map(({ pub, epoch }) => ({ pub, epoch }));
}
