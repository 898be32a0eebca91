// Herald browser client: subscribe to topics over WebSocket, Server-Sent Events or
// long-polling, whichever gets through, and resume from the last cursor after every
// reconnect, so the application sees each event exactly once, in order.
//
//   import { connect } from "/client/herald.js";
//   const herald = connect("https://herald.example.com", { token });
//   herald.subscribe("news", {}, (event) => console.log(event.type, event.data));
//
// Plain JavaScript, no build step, no dependencies. Types: /client/herald.d.ts.

const TRANSPORTS = ["websocket", "sse", "longpoll"];
// The batch subprotocol lets the server pack several messages into one frame; a server
// that does not know it picks plain herald.v1.json, which this client speaks too.
const WS_SUBPROTOCOLS = ["herald.v1.batch.json", "herald.v1.json"];
const PROBLEM_PREFIX = "urn:herald:problem:";
// Problem codes that no retry can fix: the subscription stops and reports the error.
const PERMANENT = new Set([
  "unauthenticated",
  "forbidden",
  "unknown-topic",
  "bad-cursor",
  "bad-parameter",
  "invalid",
  "malformed",
  "not-found",
]);
// SSE control events carry {topic, key, cursor}; an application event of the same type
// carries a whole event, which always has a time.
const SSE_CONTROL = new Set([
  "reset",
  "lagging",
  "shutdown",
  "token-expired",
  "skipped",
  "lag",
  "error",
]);
const SEEN_IDS = 1000;

const DEFAULTS = {
  transports: TRANSPORTS,
  snapshot: 50,
  longPollWait: 25,
  pageLimit: 100,
  backoff: { initial: 500, max: 10000 },
  // Longer than Herald's own wait for Kafka (10 s) before it answers 503 itself.
  connectTimeout: 15000,
  // Both streams send something at least every 25 s (WebSocket heartbeat, SSE ping).
  silenceTimeout: 65000,
  // A session that dies sooner than this after opening does not reset the backoff.
  stableAfter: 10000,
  // How long a fallback transport serves before the first one is tried again.
  upgradeAfter: 60000,
};

/** An error Herald answered with (problem+json or a WebSocket error op), or a network one. */
export class HeraldError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "HeraldError";
    this.code = code;
    this.status = status;
  }

  /** True when retrying cannot help (a bad token, an unknown topic, a malformed cursor). */
  get permanent() {
    return PERMANENT.has(this.code);
  }
}

/** A client for the Herald server at `baseUrl` (its origin, or origin and path prefix). */
export function connect(baseUrl, options = {}) {
  return new Herald(baseUrl, options);
}

/**
 * One connection to Herald carrying any number of subscriptions.
 *
 * Dispatches "state" ({state, transport, retryIn, behind}), "reset" ({subscription, cursor}),
 * "skipped" ({subscription, key, count}: a mode "latest" subscription left events out),
 * "lag" ({behind, live}: the server reads Kafka `behind` seconds late, or is live again) and
 * "error" ({error, subscription}) events; `on(name, listener)` is a shorthand.
 */
export class Herald extends EventTarget {
  #subs = new Set();
  #session = null;
  #closed = false;
  #poke = null;
  #everOpened = false;
  #onOnline = () => this.#wake();

  constructor(baseUrl, options = {}) {
    super();
    const base = new URL(baseUrl ?? globalThis.location.origin, globalThis.location?.href);
    this.baseUrl = base.origin + base.pathname.replace(/\/+$/, "");
    // An option given as undefined means "the default", as if it were not given.
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.options = { ...DEFAULTS, ...given, backoff: { ...DEFAULTS.backoff, ...given.backoff } };
    const unknown = this.options.transports.filter((name) => !TRANSPORTS.includes(name));
    if (unknown.length || !this.options.transports.length) {
      throw new TypeError(`transports are some of ${TRANSPORTS.join(", ")}`);
    }
    this.state = "idle";
    this.transport = null;
    // Seconds the server said it reads Kafka behind its head (0: live, events are news).
    this.behind = 0;
    globalThis.addEventListener?.("online", this.#onOnline);
    this.#supervise();
  }

  /** Listen to "state", "reset" or "error"; returns a function that stops listening. */
  on(name, listener) {
    const handler = (event) => listener(event.detail);
    this.addEventListener(name, handler);
    return () => this.removeEventListener(name, handler);
  }

  /**
   * Follow `topic` (or one `key` of it). Without `since` the subscription starts with a
   * snapshot of the latest `snapshot` events and streams on from the snapshot's cursor.
   */
  subscribe(topic, options = {}, onEvent = undefined) {
    if (typeof options === "function") [options, onEvent] = [{}, options];
    if (this.#closed) throw new Error("this Herald client is closed");
    const subscription = new Subscription(this, topic, options, onEvent);
    this.#subs.add(subscription);
    if (this.#session) this.#attach(this.#session, subscription);
    else if (this.state === "idle") this.#wake(); // a reconnect waiting out its backoff waits on
    return subscription;
  }

  /**
   * Publish one event; resolves to {id, topic, key, partition, offset} once Kafka has it.
   * Retries network failures and 503s with the same Idempotency-Key: never a second copy.
   */
  async publish(topic, data, { key, type, idempotencyKey } = {}) {
    const body = { data };
    if (key != null) body.key = key;
    if (type != null) body.type = type;
    const headers = {
      "Content-Type": "application/json",
      "Idempotency-Key": idempotencyKey ?? randomKey(),
      ...(await this.#authorization()),
    };
    for (let attempt = 0; ; attempt += 1) {
      let error;
      try {
        const response = await fetch(this.url(`/v1/topics/${enc(topic)}/events`), {
          method: "POST",
          headers,
          body: JSON.stringify(body),
        });
        if (response.ok) return (await response.json()).events[0];
        error = await problemOf(response);
      } catch (failure) {
        error = new HeraldError("network", String(failure?.message ?? failure));
      }
      const retryable = error.code === "network" || error.status === 503 || error.status === 429;
      if (!retryable || attempt >= 3) throw error;
      await sleep(this.#delay(attempt));
    }
  }

  /** The latest events of `topic` (or of one key) and the cursor to stream on from. */
  async snapshot(topic, { key, limit } = {}) {
    const response = await fetch(
      this.url(`/v1/topics/${enc(topic)}/snapshot`, { key, limit }),
      { headers: await this.#authorization() },
    );
    if (!response.ok) throw await problemOf(response);
    return response.json();
  }

  /** Stop every subscription and close the connection. */
  close() {
    this.#closed = true;
    for (const subscription of this.#subs) subscription.closed = true;
    this.#subs.clear();
    globalThis.removeEventListener?.("online", this.#onOnline);
    this.#session?.end({ reason: "closed" });
    this.#wake();
    this.#setState("closed", null);
  }

  /** An absolute URL on this server; parameters keep their order (CDN cache keys). */
  url(path, params = {}) {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(params)) {
      if (value != null && value !== "") url.searchParams.set(name, String(value));
    }
    return url.href;
  }

  // -- the connection loop -------------------------------------------------------------

  // One loop owns the connection: it picks a transport, runs a session until it ends,
  // and decides what to try next. Falling back needs proof that the transport is the
  // problem: after a failure the server must still answer plain HTTP, otherwise the
  // server is away and the same transport is retried with backoff.
  async #supervise() {
    let attempt = 0;
    let rung = 0;
    while (!this.#closed) {
      if (!this.#subs.size) {
        this.#setState("idle", null);
        await this.#sleepUntilWoken();
        continue;
      }
      const transport = this.options.transports[rung];
      this.#setState(this.#everOpened ? "reconnecting" : "connecting", transport);
      let outcome;
      try {
        await Promise.all([...this.#subs].map((subscription) => this.#prepare(subscription)));
        outcome = this.#subs.size ? await this.#run(transport) : { opened: false, idle: true };
      } catch (error) {
        // A snapshot failed: the server is away, or cannot serve now (503, 429).
        this.#emitError(error);
        outcome = { opened: false, reachable: false };
      }
      if (this.#closed || outcome.idle) continue;
      if (outcome.upgrade) {
        rung = 0;
        attempt = 0;
        continue;
      }
      if (outcome.opened) {
        rung = 0;
        attempt = outcome.stable ? 0 : attempt + 1;
      } else if (outcome.reachable ?? (await this.#reachable())) {
        rung += 1;
        if (rung < this.options.transports.length) continue; // fall back at once
        rung = 0;
        attempt += 1;
      } else {
        attempt += 1;
      }
      const delay = this.#delay(attempt);
      this.#setState("reconnecting", this.options.transports[rung], delay);
      await this.#sleepUntilWoken(delay);
    }
  }

  #run(transport) {
    const Session = { websocket: WebSocketSession, sse: SseSession, longpoll: LongPollSession }[
      transport
    ];
    return new Promise((resolve) => {
      // On a fallback transport, try the preferred one again now and then: whatever
      // blocked it (a proxy, a network) may be gone. Cursors make the switch seamless.
      const upgrade =
        transport === this.options.transports[0]
          ? null
          : setTimeout(() => session.end({ upgrade: true }), this.options.upgradeAfter);
      const session = new Session(this, (outcome) => {
        clearTimeout(upgrade);
        if (this.#session === session) this.#session = null;
        resolve(outcome);
      });
      this.#session = session;
      for (const subscription of this.#subs) this.#attach(session, subscription);
    });
  }

  #attach(session, subscription) {
    this.#prepare(subscription).then(
      () => {
        if (this.#session === session && this.#subs.has(subscription)) session.add(subscription);
      },
      (error) => session.end({ reason: error, reachable: false }),
    );
  }

  // A subscription without a start point begins with a snapshot; its cursor is where the
  // stream takes over, so nothing falls between the two.
  #prepare(subscription) {
    if (subscription.cursor !== undefined) return Promise.resolve();
    subscription.preparing ??= (async () => {
      try {
        const limit = subscription.snapshotLimit;
        const snapshot = await this.snapshot(subscription.topic, {
          key: subscription.key ?? undefined,
          limit: limit || 1,
        });
        if (limit) for (const event of snapshot.events) subscription.deliver(event);
        subscription.cursor = snapshot.cursor;
      } catch (error) {
        if (!(error instanceof HeraldError && error.permanent)) throw error;
        this.fail(subscription, error);
      } finally {
        subscription.preparing = null;
      }
    })();
    return subscription.preparing;
  }

  // Does Herald answer plain HTTP? Asked with the first subscription's snapshot, a
  // request that surely passes whatever proxy or CDN sits in front of Herald. A proxy's
  // own error page (502, 504) is no answer from Herald.
  async #reachable() {
    const [first] = this.#subs;
    const url = first
      ? this.url(`/v1/topics/${enc(first.topic)}/snapshot`, { key: first.key, limit: 1 })
      : this.url("/healthz");
    try {
      const response = await fetch(url, {
        headers: await this.#authorization(),
        cache: "no-store",
        signal: AbortSignal.timeout(this.options.connectTimeout),
      });
      return response.ok || isProblem(response);
    } catch {
      return false;
    }
  }

  // Exponential backoff with jitter: between half and all of initial * 2^attempt.
  #delay(attempt) {
    const { initial, max } = this.options.backoff;
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  #sleepUntilWoken(ms = undefined) {
    return new Promise((resolve) => {
      const timer = ms === undefined ? null : setTimeout(() => this.#wake(), ms);
      this.#poke = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #wake() {
    const poke = this.#poke;
    this.#poke = null;
    poke?.();
  }

  #setState(state, transport, retryIn = undefined) {
    if (this.state === state && this.transport === transport && retryIn === undefined) return;
    this.state = state;
    this.transport = transport;
    const detail = { state, transport, retryIn, behind: this.behind };
    this.dispatchEvent(new CustomEvent("state", { detail }));
  }

  #emitError(error, subscription = null) {
    this.dispatchEvent(new CustomEvent("error", { detail: { error, subscription } }));
  }

  async #authorization() {
    const token = await this.token();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // -- for the sessions ------------------------------------------------------------------

  /** The current token (options.token may be a string or a function returning one). */
  async token() {
    const { token } = this.options;
    return typeof token === "function" ? await token() : token;
  }

  /** A session is open: the state says so. */
  opened(session) {
    if (this.#session !== session) return;
    this.#everOpened = true;
    this.behind = 0; // a server that lags says so as soon as the session opens
    this.#setState("open", session.transport);
  }

  /** The server reads Kafka `behind` seconds late (0: it caught up). */
  lagged(session, behind) {
    if (!this.current(session) || behind === this.behind) return;
    this.behind = behind;
    const { state, transport } = this;
    this.dispatchEvent(new CustomEvent("lag", { detail: { behind, live: behind === 0 } }));
    this.dispatchEvent(new CustomEvent("state", { detail: { state, transport, behind } }));
  }

  /** Whether messages of `session` still count: a replaced session's stragglers do not. */
  current(session) {
    return this.#session === session && !this.#closed;
  }

  reset(subscription, cursor) {
    subscription.cursor = cursor;
    const detail = { subscription, topic: subscription.topic, key: subscription.key, cursor };
    subscription.dispatchEvent(new CustomEvent("reset", { detail }));
    this.dispatchEvent(new CustomEvent("reset", { detail }));
  }

  /** A mode "latest" subscription was told `count` events (of `key`) were left out. */
  skipped(subscription, key, count) {
    const detail = { subscription, topic: subscription.topic, key, count };
    subscription.dispatchEvent(new CustomEvent("skipped", { detail }));
    this.dispatchEvent(new CustomEvent("skipped", { detail }));
  }

  fail(subscription, error) {
    subscription.closed = true;
    this.drop(subscription);
    subscription.dispatchEvent(new CustomEvent("error", { detail: { error, subscription } }));
    this.#emitError(error, subscription);
  }

  drop(subscription) {
    this.#subs.delete(subscription);
    this.#session?.remove(subscription);
    // Nothing left to follow: the loop goes idle until the next subscribe.
    if (!this.#subs.size) this.#session?.end({ opened: true, stable: true, idle: true });
  }
}

/** One followed topic (or key): its cursor, and the callback that sees each event once. */
export class Subscription extends EventTarget {
  #client;
  #onEvent;
  #seen = new Set();
  #order = [];

  constructor(client, topic, { key = null, since, snapshot, mode } = {}, onEvent = undefined) {
    super();
    this.#client = client;
    this.#onEvent = onEvent ?? (() => {});
    this.topic = topic;
    this.key = key ?? null;
    // "latest": while events wait, only the newest per key ("skipped" says how many went).
    this.mode = mode === "latest" ? "latest" : null;
    // The position after the last event delivered: every reconnect resumes from here.
    this.cursor = since ?? undefined;
    this.snapshotLimit = snapshot ?? client.options.snapshot;
    this.closed = false;
    this.preparing = null;
  }

  /** Stop following; no event reaches the callback after this returns. */
  unsubscribe() {
    if (this.closed) return;
    this.closed = true;
    this.#client.drop(this);
  }

  /** Hand one event to the application, unless it has had it already. */
  deliver(event) {
    if (this.closed || this.#seen.has(event.id)) return;
    this.#seen.add(event.id);
    this.#order.push(event.id);
    if (this.#order.length > SEEN_IDS) this.#seen.delete(this.#order.shift());
    this.cursor = event.id;
    try {
      this.#onEvent(event, this);
    } catch (error) {
      // The application's bug must not stop delivery: report it and go on.
      if (globalThis.reportError) globalThis.reportError(error);
      else console.error(error);
    }
  }
}

// -- sessions: one per connection attempt, all alike to the loop -------------------------

class Session {
  constructor(client, done) {
    this.client = client;
    this.done = done;
    this.opened = false;
    this.openedAt = 0;
    this.ended = false;
    this.heard = new Map();
    this.connectTimer = setTimeout(
      () => this.end({ reason: "connect timeout" }),
      client.options.connectTimeout,
    );
    this.watchdog = setInterval(() => this.#checkSilence(), 5000);
  }

  /** The connection reached Herald (a WebSocket handshake): no connect timeout now. */
  reached() {
    clearTimeout(this.connectTimer);
  }

  /** The transport works: the first message arrived. */
  open() {
    if (this.opened || this.ended) return;
    this.opened = true;
    this.openedAt = Date.now();
    this.reached();
    this.client.opened(this);
  }

  /** Something arrived on `channel` (a socket or a stream): it is alive. */
  alive(channel) {
    this.heard.set(channel, Date.now());
  }

  forget(channel) {
    this.heard.delete(channel);
  }

  deliver(subscription, event) {
    if (this.client.current(this)) subscription.deliver(event);
  }

  advance(subscription, cursor) {
    if (this.client.current(this) && cursor) subscription.cursor = cursor;
  }

  reset(subscription, cursor) {
    if (this.client.current(this)) this.client.reset(subscription, cursor);
  }

  skipped(subscription, key, count) {
    if (this.client.current(this) && count > 0) this.client.skipped(subscription, key, count);
  }

  // An error about one subscription: permanent ones end it, others end the session, and
  // the reconnect resubscribes from the cursor.
  failed(subscription, error) {
    if (!this.client.current(this)) return;
    if (error.permanent) this.client.fail(subscription, error);
    else this.end({ reason: error });
  }

  end(outcome) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.connectTimer);
    clearInterval(this.watchdog);
    this.close();
    const stable = this.opened && Date.now() - this.openedAt >= this.client.options.stableAfter;
    this.done({ opened: this.opened, stable, ...outcome });
  }

  close() {}

  #checkSilence() {
    const limit = Date.now() - this.client.options.silenceTimeout;
    for (const last of this.heard.values()) {
      if (last < limit) this.end({ reason: "silence" });
    }
  }
}

// One socket carries at most one subscription per topic, ever, because an event names its
// topic and key but not the subscription it belongs to: a second subscription of the same
// topic (the whole topic and one of its keys, say), or a new one after an unsubscribe whose
// last events may still be on their way, gets a socket of its own.
// WebSocket.OPEN, without reading the WebSocket global: a page may have none (then the client
// goes on with SSE or long-polling, and must not throw on every subscribe).
const WS_OPEN = 1;

class WebSocketSession extends Session {
  transport = "websocket";
  sockets = [];

  add(subscription) {
    if (this.ended || this.sockets.some((socket) => socket.subs.has(subscription))) return;
    let socket = this.sockets.find(
      (candidate) => !candidate.carried.has(subscription.topic) && candidate.subs.size < 100,
    );
    if (!socket) {
      socket = new Socket(this);
      this.sockets.push(socket);
      socket.connect().catch((error) => this.end({ reason: error }));
    }
    socket.add(subscription);
  }

  remove(subscription) {
    for (const socket of this.sockets) {
      if (!socket.subs.has(subscription)) continue;
      socket.remove(subscription);
      if (!socket.subs.size) {
        this.sockets = this.sockets.filter((other) => other !== socket);
        socket.close();
      }
    }
  }

  close() {
    for (const socket of this.sockets) socket.close();
  }
}

class Socket {
  subs = new Set();
  byTopic = new Map();
  carried = new Set();
  ws = null;
  closing = false;

  constructor(session) {
    this.session = session;
  }

  get #open() {
    return this.ws?.readyState === WS_OPEN;
  }

  async connect() {
    const session = this.session;
    const url = new URL(session.client.url("/v1/ws", { access_token: await session.client.token() }));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.closing) return;
    session.alive(this);
    try {
      this.ws = new WebSocket(url, WS_SUBPROTOCOLS);
    } catch (error) {
      session.end({ reason: error });
      return;
    }
    this.ws.onopen = () => {
      // A socket that closes before its first message still counts as a failed transport
      // (a proxy that accepts the upgrade and then drops it), but a slow answer does not.
      session.reached();
      session.alive(this);
      for (const subscription of this.subs) this.#subscribe(subscription);
    };
    this.ws.onmessage = (message) => {
      session.alive(this);
      session.open();
      let parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        session.end({ reason: "unreadable frame" });
        return;
      }
      this.#handle(parsed);
    };
    this.ws.onclose = (close) => {
      session.forget(this);
      if (!this.closing) session.end({ reason: `closed ${close.code} ${close.reason}`.trim() });
    };
  }

  add(subscription) {
    this.subs.add(subscription);
    this.byTopic.set(subscription.topic, subscription);
    this.carried.add(subscription.topic);
    if (this.#open) this.#subscribe(subscription);
  }

  remove(subscription) {
    this.subs.delete(subscription);
    this.byTopic.delete(subscription.topic);
    if (this.#open) {
      this.#send({ op: "unsubscribe", topic: subscription.topic, key: subscription.key });
    }
  }

  close() {
    this.closing = true;
    this.session.forget(this);
    this.ws?.close(1000);
  }

  #subscribe(subscription) {
    this.#send({
      op: "subscribe",
      topic: subscription.topic,
      key: subscription.key,
      since: subscription.cursor,
      mode: subscription.mode,
    });
  }

  #send(message) {
    // null and undefined fields are left out: the server reads absent as "none".
    this.ws.send(JSON.stringify(message, (name, value) => (value === null ? undefined : value)));
  }

  #handle(message) {
    const session = this.session;
    const subscription = this.byTopic.get(message.topic);
    switch (message.op) {
      case "batch":
        for (const inner of message.messages) this.#handle(inner);
        break;
      case "event": {
        const { op, ...event } = message;
        if (subscription) session.deliver(subscription, event);
        break;
      }
      case "subscribed":
        if (subscription) session.advance(subscription, message.cursor);
        break;
      case "reset":
        if (subscription) session.reset(subscription, message.cursor);
        break;
      case "skipped":
        if (subscription) session.skipped(subscription, message.key, message.count);
        break;
      case "lag":
        session.client.lagged(session, message.behind_s);
        break;
      case "error": {
        const error = new HeraldError(message.code, message.message);
        if (subscription && message.topic) session.failed(subscription, error);
        else {
          const detail = { error, subscription: null };
          session.client.dispatchEvent(new CustomEvent("error", { detail }));
        }
        break;
      }
      default:
        // heartbeat, pong, ack; lagging is followed by a close (4409), then a resume.
        break;
    }
  }
}

// SSE read with fetch rather than EventSource: an EventSource delivers only event types
// it was told beforehand, and Herald names events by their application type. Reconnects
// are ours too, from the subscription's cursor.
class SseSession extends Session {
  transport = "sse";
  streams = new Map();

  add(subscription) {
    if (this.ended || this.streams.has(subscription)) return;
    const controller = new AbortController();
    this.streams.set(subscription, controller);
    this.#follow(subscription, controller.signal).catch((error) => {
      if (!controller.signal.aborted) this.end({ reason: error });
    });
  }

  remove(subscription) {
    this.streams.get(subscription)?.abort();
    this.streams.delete(subscription);
    this.forget(subscription);
  }

  close() {
    for (const controller of this.streams.values()) controller.abort();
  }

  async #follow(subscription, signal) {
    const client = this.client;
    const url = client.url(`/v1/topics/${enc(subscription.topic)}/stream`, {
      key: subscription.key,
      since: subscription.cursor,
      mode: subscription.mode ?? undefined,
    });
    const token = await client.token();
    this.alive(subscription); // a stream that never answers is caught like a silent one
    const response = await fetch(url, {
      headers: { Accept: "text/event-stream", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      cache: "no-store",
      signal,
    });
    if (!isEventStream(response)) {
      await this.#refused(subscription, response);
      return;
    }
    this.alive(subscription);
    this.open();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser((block) => this.#dispatch(subscription, block));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      this.alive(subscription);
      parser.push(value);
    }
    if (!signal.aborted) this.end({ reason: "stream ended" });
  }

  // Herald's own refusals (problem+json) are about the subscription; anything else means
  // something between us and Herald refuses streams: try the next transport.
  async #refused(subscription, response) {
    if (isProblem(response)) {
      const error = await problemOf(response);
      if (error.permanent) this.failed(subscription, error);
      else this.end({ reason: error, reachable: false, opened: true });
    } else {
      this.end({ reason: `stream answered ${response.status}` });
    }
  }

  #dispatch(subscription, { event, data }) {
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }
    if (SSE_CONTROL.has(event) && !(body instanceof Object && "time" in body)) {
      if (event === "reset") this.reset(subscription, body.cursor);
      else if (event === "skipped") this.skipped(subscription, body.key, body.count);
      else if (event === "lag") this.client.lagged(this, body.behind_s);
      else if (event === "error") this.failed(subscription, problemError(body, 0));
      // lagging, shutdown, token-expired: the stream ends next; the reconnect resumes from
      // the cursor (with a fresh token from options.token when it is a function).
      return;
    }
    this.deliver(subscription, body);
  }
}

// Long-polling: the same URL for the same position (no cache-busting parameter), so a CDN
// in front of Herald can answer many clients waiting at one cursor with one request.
class LongPollSession extends Session {
  transport = "longpoll";
  polls = new Map();

  add(subscription) {
    if (this.ended || this.polls.has(subscription)) return;
    const controller = new AbortController();
    this.polls.set(subscription, controller);
    this.#poll(subscription, controller.signal).catch((error) => {
      if (!controller.signal.aborted) this.end({ reason: error });
    });
  }

  remove(subscription) {
    this.polls.get(subscription)?.abort();
    this.polls.delete(subscription);
  }

  close() {
    for (const controller of this.polls.values()) controller.abort();
  }

  async #poll(subscription, signal) {
    const client = this.client;
    const { longPollWait, pageLimit } = client.options;
    // Pages are read without waiting until one comes back short: then the subscription
    // is at the head, and the next request waits there for the first new event.
    let atHead = false;
    while (!signal.aborted) {
      const wait = atHead ? longPollWait : 0;
      const url = client.url(`/v1/topics/${enc(subscription.topic)}/events`, {
        key: subscription.key,
        after: subscription.cursor,
        limit: pageLimit,
        wait: wait || undefined,
        mode: subscription.mode ?? undefined,
      });
      const started = Date.now();
      const token = await client.token();
      const [request, release] = withDeadline(signal, (wait + 15) * 1000);
      let response;
      let page;
      try {
        response = await fetch(url, {
          headers: token ? { Authorization: `Bearer ${token}` } : {},
          // A head answer may be cached for a moment (for a CDN to collapse waiting
          // requests); the browser must not hand the last empty one back at once.
          cache: wait ? "no-cache" : "default",
          signal: request,
        });
        if (response.ok) page = await response.json();
      } finally {
        release();
      }
      if (!response.ok) {
        if (isProblem(response)) {
          const error = await problemOf(response);
          if (error.permanent) this.failed(subscription, error);
          else this.end({ reason: error, reachable: false, opened: true });
        } else {
          this.end({ reason: `poll answered ${response.status}` });
        }
        return;
      }
      this.open();
      if (page.reset) this.reset(subscription, page.reset);
      if (page.skipped) this.skipped(subscription, null, page.skipped);
      for (const event of page.events) this.deliver(subscription, event);
      this.advance(subscription, page.next);
      // An empty answer to a waiting request that came back at once (a cache kept it)
      // must not turn this loop into a busy one.
      if (atHead && !page.events.length && Date.now() - started < 1000) {
        await sleep(1000, signal);
      }
      atHead = page.events.length < pageLimit;
    }
  }
}

// -- small pieces --------------------------------------------------------------------------

/** Splits a text/event-stream into blocks of {event, data, id}, per the HTML standard. */
class SseParser {
  #buffer = "";
  #afterCR = false;
  #event = "";
  #data = [];
  #id = undefined;

  constructor(onBlock) {
    this.onBlock = onBlock;
  }

  push(text) {
    // A chunk that ends in "\r" may be half of a "\r\n": the "\n" must not end a line.
    if (this.#afterCR && text.startsWith("\n")) text = text.slice(1);
    this.#afterCR = text.endsWith("\r");
    const lines = (this.#buffer + text).split(/\r\n|\r|\n/);
    this.#buffer = lines.pop();
    for (const line of lines) this.#line(line);
  }

  #line(line) {
    if (line === "") {
      if (this.#data.length) {
        this.onBlock({ event: this.#event || "message", data: this.#data.join("\n"), id: this.#id });
      }
      this.#event = "";
      this.#data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.#event = value;
    else if (name === "data") this.#data.push(value);
    else if (name === "id") this.#id = value;
  }
}

function enc(text) {
  return encodeURIComponent(text);
}

function isEventStream(response) {
  return response.ok && (response.headers.get("Content-Type") ?? "").startsWith("text/event-stream");
}

function isProblem(response) {
  return (response.headers.get("Content-Type") ?? "").startsWith("application/problem+json");
}

async function problemOf(response) {
  try {
    return problemError(await response.json(), response.status);
  } catch {
    return new HeraldError(`http-${response.status}`, response.statusText, response.status);
  }
}

function problemError(problem, status) {
  const type = String(problem.type ?? "");
  const code = type.startsWith(PROBLEM_PREFIX) ? type.slice(PROBLEM_PREFIX.length) : type;
  return new HeraldError(code || `http-${status}`, problem.detail ?? problem.title ?? "", status);
}

// A signal that aborts with `signal` or after `ms`, and the function that lets go of it
// (AbortSignal.any is too new for some browsers still in use).
function withDeadline(signal, ms) {
  const controller = new AbortController();
  const abort = () => controller.abort(signal.reason);
  const timer = setTimeout(() => controller.abort(new DOMException("timeout", "TimeoutError")), ms);
  signal.addEventListener("abort", abort, { once: true });
  return [
    controller.signal,
    () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", abort);
    },
  ];
}

function sleep(ms, signal = undefined) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

// crypto.randomUUID exists only on secure origins; a phone on a LAN address is not one.
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
