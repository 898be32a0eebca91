// Demo: subscribe over WebSocket (JSON) and publish over HTTP.
const state = document.getElementById("state");
const list = document.getElementById("events");
const form = document.getElementById("publish");
const topicInput = document.getElementById("topic");
let socket = null;
let lastId = null;

function connect(topic) {
  const url = new URL("/v1/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("topic", topic);
  if (lastId) url.searchParams.set("since", lastId);
  socket = new WebSocket(url, ["herald.v1.json"]);
  socket.onopen = () => { state.textContent = "websocket: open"; state.className = "state open"; };
  socket.onclose = () => {
    state.textContent = "websocket: reconnecting…"; state.className = "state";
    setTimeout(() => connect(topic), 1000 + Math.random() * 1000);
  };
  socket.onmessage = (message) => {
    const msg = JSON.parse(message.data);
    if (msg.op !== "event") return;
    lastId = msg.id;
    const item = document.createElement("li");
    item.textContent = `${msg.time} ${msg.key ?? ""} ${msg.type}: ${JSON.stringify(msg.data)}`;
    list.prepend(item);
  };
}

form.addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const key = document.getElementById("key").value || undefined;
  const body = { data: { text: document.getElementById("message").value }, key };
  await fetch(`/v1/topics/${encodeURIComponent(topicInput.value)}/events`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
});

connect(topicInput.value);
