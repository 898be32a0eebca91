// Demo page: a live feed of one topic, a keyed notifications view, publishing, and the
// connection's state. The client (/client/herald.js) picks the transport by itself: a
// WebSocket on /v1/ws, else the SSE stream, else long-polling the events pages.
import { connect } from "/client/herald.js";

const TRANSPORT_NAMES = { websocket: "WebSocket", sse: "SSE", longpoll: "long-polling" };
const SHOWN = 500; // list items kept on screen; the counters count everything

const query = new URLSearchParams(location.search);
const topic = query.get("topic") || "demo";
const user = query.get("user") || "user-42";
const transports = query.getAll("transports").flatMap((value) => value.split(","));
const [initial, max] = (query.get("backoff") || "").split(",").map(Number);

const herald = connect(location.origin, {
  transports: transports.length ? transports : undefined,
  backoff: initial ? { initial, max: max || initial * 16 } : undefined,
});
const $ = (id) => document.getElementById(id);

// What the page shows, for people and for the browser tests: events in arrival order.
const demo = {
  client: herald,
  states: [],
  feed: [],
  notifications: [],
  duplicates: 0,
  // What this page published, recognised when it comes back: {partition, offset, delivered}.
  published: [],
};
window.heraldDemo = demo;

// -- connection state --------------------------------------------------------------------

herald.on("state", ({ state, transport, retryIn }) => {
  const connection = $("connection");
  connection.dataset.state = state;
  connection.dataset.transport = transport ?? "";
  $("connection-state").textContent =
    retryIn === undefined ? state : `${state} in ${(retryIn / 1000).toFixed(1)} s`;
  $("connection-transport").textContent = TRANSPORT_NAMES[transport] ?? "nothing";
  demo.states.push({ state, transport });
  log(`${state}${transport ? ` (${TRANSPORT_NAMES[transport]})` : ""}${
    retryIn === undefined ? "" : `, next try in ${(retryIn / 1000).toFixed(1)} s`
  }`);
});
// The server says when it reads Kafka late: silence then means "on the way", not "no news".
herald.on("lag", ({ behind, live }) => {
  const lag = $("connection-lag");
  lag.dataset.live = String(live);
  lag.textContent = live ? "live" : `catching up (${Math.round(behind)} s behind)`;
  demo.lag = { behind, live };
  log(live ? "the server caught up: live" : `the server reads Kafka ${Math.round(behind)} s late`);
});
herald.on("reset", ({ topic: resetTopic, key, cursor }) => {
  log(`reset: ${resetTopic}${key ? `/${key}` : ""} resumes at ${cursor} (older events expired)`);
});
herald.on("error", ({ error }) => log(`error: ${error.code ?? ""} ${error.message}`));

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").prepend(item);
  while ($("log").children.length > 20) $("log").lastChild.remove();
}

// -- the two subscriptions ---------------------------------------------------------------

$("feed-topic").textContent = topic;
$("notifications-user").textContent = user;
$("settings-topic").value = topic;
$("settings-user").value = user;
if (transports.length) {
  for (const box of document.querySelectorAll("input[name=transports]")) {
    box.checked = transports.includes(box.value);
  }
}

herald.subscribe(topic, {}, (event) => show("feed", event));
herald.subscribe("notifications", { key: user }, (event) => show("notifications", event));

const seen = { feed: new Set(), notifications: new Set() };

function show(list, event) {
  // The client promises each event once; the page checks, so people can see it holds.
  if (seen[list].has(event.id)) {
    demo.duplicates += 1;
    $("feed-duplicates").dataset.count = demo.duplicates;
    $("feed-duplicates").textContent = plural(demo.duplicates, "duplicate");
  }
  seen[list].add(event.id);
  demo[list].push({ id: event.id, key: event.key, type: event.type, text: describe(event.data) });
  // A delivered event carries what its publish was answered with: the page knows its own.
  const own = demo.published.find(
    (mine) => mine.partition === event.partition && mine.offset === event.offset,
  );
  $(`${list}-count`).textContent = plural(demo[list].length, list === "feed" ? "event" : "notification");

  const item = document.createElement("li");
  item.dataset.id = event.id;
  const time = document.createElement("time");
  time.dateTime = event.time;
  time.textContent = new Date(event.time).toLocaleTimeString();
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = event.type;
  const body = document.createElement("span");
  body.className = "data";
  body.textContent = describe(event.data);
  item.append(time, " ", type, " ");
  if (event.key !== null && list === "feed") {
    const key = document.createElement("span");
    key.className = "key";
    key.textContent = event.key;
    item.append(key, " ");
  }
  item.append(body);
  if (list === "feed") {
    arrived.set(`${event.partition}:${event.offset}`, item);
    if (arrived.size > SHOWN) arrived.delete(arrived.keys().next().value);
    if (own) markDelivered(own, item);
  }
  const target = $(list);
  target.prepend(item);
  while (target.children.length > SHOWN) target.lastChild.remove();
}

// The feed's items by the identity of their event ("partition:offset"): an event may come back
// before its publish's answer does.
const arrived = new Map();

function markDelivered(own, item) {
  own.delivered = true;
  item.dataset.own = "delivered";
  const mark = document.createElement("span");
  mark.className = "own";
  mark.title = "published from this page, and delivered back";
  mark.textContent = " ✓✓";
  item.append(mark);
  $("publish-status").textContent = `delivered ✓✓ (partition ${own.partition}, offset ${own.offset})`;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function describe(data) {
  if (data && typeof data === "object" && typeof data.text === "string") return data.text;
  return JSON.stringify(data);
}

// -- publishing ----------------------------------------------------------------------------

$("publish").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const status = $("publish-status");
  status.textContent = "publishing…";
  try {
    const published = await herald.publish(
      topic,
      { text: $("publish-text").value },
      { key: $("publish-key").value || undefined, type: $("publish-type").value || undefined },
    );
    // Published (acknowledged by Kafka) ✓; delivered ✓✓ once it comes back on the feed.
    const own = { partition: published.partition, offset: published.offset, delivered: false };
    demo.published.push(own);
    status.textContent = `published ✓ (partition ${own.partition}, offset ${own.offset})`;
    const item = arrived.get(`${own.partition}:${own.offset}`);
    if (item) markDelivered(own, item);
  } catch (error) {
    status.textContent = `not published: ${error.message}`;
  }
});

$("notify").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  try {
    await herald.publish(
      "notifications",
      { text: $("notify-text").value },
      { key: user, type: "notification" },
    );
  } catch (error) {
    log(`notification not sent: ${error.message}`);
  }
});
