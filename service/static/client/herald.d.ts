// Types of Herald's browser client, /client/herald.js.
//
//   import { connect } from "https://herald.example.com/client/herald.js";
//   const herald = connect("https://herald.example.com", { token });
//   const sub = herald.subscribe("notifications", { key: "user-42" }, (event) => show(event));

/** Which way events travel, in the order the client tries them by default. */
export type Transport = "websocket" | "sse" | "longpoll";

/**
 * - `idle`: nothing subscribed, so no connection.
 * - `connecting`: the first connection is being made.
 * - `open`: events flow over `transport`.
 * - `reconnecting`: the connection was lost (or a transport is being tried); it resumes.
 * - `closed`: `close()` was called.
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Any JSON value (msgpack is not used by this client). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One event as delivered (schemas/event.schema.json). */
export interface HeraldEvent<Data = Json> {
  /** The cursor just after this event: resuming from it delivers exactly the later ones. */
  id: string;
  topic: string;
  key: string | null;
  /** With `offset`, what this event's publish was answered with (see `Published`): a page
   * recognises an event it published itself, on any instance, after any reconnect. */
  partition: number;
  /** A string: offsets may pass 2^53. */
  offset: string;
  /** Defaults to "message". */
  type: string;
  /** RFC 3339, from the Kafka record timestamp. */
  time: string;
  data: Data;
}

/** What `publish` answers once Kafka acknowledged the event (acks=all). */
export interface Published {
  id: string;
  topic: string;
  key: string | null;
  partition: number;
  /** A string: offsets may pass 2^53. */
  offset: string;
}

/** What `snapshot` answers: the latest events (oldest first) and the cursor after them. */
export interface Snapshot<Data = Json> {
  topic: string;
  key: string | null;
  cursor: string;
  events: HeraldEvent<Data>[];
}

export interface ConnectOptions {
  /** A JWT, or a function that returns the current one (called at every connect). */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /** Transports to try, in order. Default: ["websocket", "sse", "longpoll"]. */
  transports?: Transport[];
  /** Events a subscription without `since` starts with (from a snapshot). Default 50. */
  snapshot?: number;
  /** Seconds a long-poll waits at the head of the stream (at most the server's
   * HERALD_MAX_WAIT_S). Default 25. */
  longPollWait?: number;
  /** Events per history page while catching up over long-polling. Default 100. */
  pageLimit?: number;
  /** Reconnect delays in ms: each failure doubles the delay (with jitter, between half
   * and all of it) from `initial` up to `max`. Default {initial: 500, max: 10000}. */
  backoff?: { initial?: number; max?: number };
  /** ms a transport may take to reach Herald (a WebSocket handshake, an SSE stream's or
   * a page's answer) before the next is tried. Default 15000. */
  connectTimeout?: number;
  /** ms without a byte (the server sends heartbeats) before a connection counts as dead.
   * Default 65000. */
  silenceTimeout?: number;
  /** ms a connection must stay open for the backoff to start over. Default 10000. */
  /** ms a fallback transport serves before the preferred one is tried again (it may
   * work now); the switch resumes from the cursors. Default 60000. */
  upgradeAfter?: number;
  stableAfter?: number;
}

export interface SubscribeOptions {
  /** Only this key's events (a keyed subscription); default: every key of the topic. */
  key?: string | null;
  /**
   * Where to start: an event `id` or any cursor, `"earliest"`, or an RFC 3339 time.
   * Without it the subscription starts from a snapshot of the latest events and hands
   * over to the live stream at the snapshot's cursor: nothing missed, nothing twice.
   */
  since?: string;
  /** Events the starting snapshot holds (0: none, only its cursor). Default: options.snapshot. */
  snapshot?: number;
  /**
   * "latest": for state rather than a log (scores, positions, presence). While events wait
   * for a slow client, only the newest of each key is kept; a "skipped" event says how
   * many were left out. Default: every event ("all").
   */
  mode?: "all" | "latest";
}

export interface PublishOptions {
  key?: string;
  type?: string;
  /** Retries of one publish carry one key, so Kafka gets the event once. Default: random. */
  idempotencyKey?: string;
}

export interface StateDetail {
  state: ConnectionState;
  transport: Transport | null;
  /** Set while waiting to reconnect: ms until the next try. */
  retryIn?: number;
  /** Seconds the server reads Kafka behind its head (0: live). See `Herald.behind`. */
  behind: number;
}

export interface LagDetail {
  /** Seconds behind Kafka's head the server reads: events arrive this late. 0: live. */
  behind: number;
  live: boolean;
}

export interface ResetDetail {
  subscription: Subscription;
  topic: string;
  key: string | null;
  /** Delivery continues here: the events between the old cursor and this one are gone
   * from Kafka (retention). The only kind of gap there is, and it is announced. */
  cursor: string;
}

export interface ErrorDetail {
  error: HeraldError;
  /** The subscription the error is about, if any; a permanent error ended it. */
  subscription: Subscription | null;
}

export interface SkippedDetail {
  subscription: Subscription;
  topic: string;
  /** The key whose events were left out (null: unkeyed, or not said by a history page). */
  key: string | null;
  count: number;
}

export interface HeraldEventMap {
  state: StateDetail;
  reset: ResetDetail;
  skipped: SkippedDetail;
  lag: LagDetail;
  error: ErrorDetail;
}

/** An error Herald answered with, or `code: "network"`. */
export class HeraldError extends Error {
  /** The problem type's last word: "forbidden", "unknown-topic", "bad-cursor", … */
  readonly code: string;
  /** The HTTP status, 0 when there was none (WebSocket, network). */
  readonly status: number;
  /** True when retrying cannot help; the subscription it concerns has stopped. */
  readonly permanent: boolean;
}

export class Subscription extends EventTarget {
  readonly topic: string;
  readonly key: string | null;
  /** The position after the last event delivered; reconnects resume from here. */
  readonly cursor: string | undefined;
  /** True after `unsubscribe()` or a permanent error. */
  readonly closed: boolean;
  /** Stop following; no event reaches the callback afterwards. */
  unsubscribe(): void;
  addEventListener(
    type: "reset",
    listener: (event: CustomEvent<ResetDetail>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: "error",
    listener: (event: CustomEvent<ErrorDetail>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

export class Herald extends EventTarget {
  /** The server's origin (and path prefix), without a trailing slash. */
  readonly baseUrl: string;
  readonly state: ConnectionState;
  readonly transport: Transport | null;
  /**
   * Seconds the server said it reads Kafka behind its head (0: live). While above 0,
   * silence is not "no news": events are on their way, late. Sent past the server's
   * HERALD_LAG_NOTICE_S; back to 0 once it caught up (or on a new connection).
   */
  readonly behind: number;

  constructor(baseUrl?: string | URL, options?: ConnectOptions);

  /** Listen to "state", "reset", "skipped", "lag" or "error"; returns a function that stops listening. */
  on<K extends keyof HeraldEventMap>(
    name: K,
    listener: (detail: HeraldEventMap[K]) => void,
  ): () => void;

  /**
   * Follow a topic (or one key of it). `onEvent` sees every event once, in order (per key;
   * per partition for a whole topic), across reconnects and transport changes.
   */
  subscribe<Data = Json>(
    topic: string,
    options: SubscribeOptions,
    onEvent: (event: HeraldEvent<Data>, subscription: Subscription) => void,
  ): Subscription;
  subscribe<Data = Json>(
    topic: string,
    onEvent: (event: HeraldEvent<Data>, subscription: Subscription) => void,
  ): Subscription;

  /** Publish one event over HTTP; resolves once Kafka acknowledged it. */
  publish(topic: string, data: Json, options?: PublishOptions): Promise<Published>;

  /** The latest events of a topic (or key) and the cursor after them. */
  snapshot<Data = Json>(
    topic: string,
    options?: { key?: string; limit?: number },
  ): Promise<Snapshot<Data>>;

  /** Stop every subscription and close the connection for good. */
  close(): void;

  /** An absolute URL on this server. */
  url(path: string, params?: Record<string, string | number | null | undefined>): string;
}

/** A client for the Herald server at `baseUrl` (default: this page's origin). */
export function connect(baseUrl?: string | URL, options?: ConnectOptions): Herald;
