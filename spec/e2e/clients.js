// clients.js - a pool of real @microsoft/signalr clients driven by JSON
// lines on stdin; every event is written as one JSON line on stdout.
//   {"cmd":"connect","name":"a","url":"...","accessToken":"...","targets":["newMessage"]}
//   {"cmd":"invoke","name":"a","target":"echo","args":[1]}   (client -> server send)
//   {"cmd":"call","name":"a","id":"q1","target":"echo","args":[1]}  (invoke, waits for the result)
//   connect takes "protocol":"messagepack" for the MessagePack hub protocol
//   and "transport":"ServerSentEvents"|"LongPolling" (default WebSockets);
//   and "digest":true: a string argument over 64 KiB is then reported as
//   {"sha256": hex, "length": n} (of its UTF-8 bytes), to compare big
//   messages byte for byte without writing them out
//   {"cmd":"stop","name":"a"}    {"cmd":"quit"}
// events: connected {name, connectionId} | message {name, target, args}
//         closed {name, error} | failed {name, error}
//         result {name, id, result} | call_failed {name, id, error}
"use strict";
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");
const readline = require("readline");
const crypto = require("crypto");

// Big strings as their digest: the events file stays small.
const digest = (args) => args.map((a) => (typeof a === "string" && a.length > 65536
  ? { sha256: crypto.createHash("sha256").update(a, "utf8").digest("hex"), length: Buffer.byteLength(a, "utf8") }
  : a));

const pool = new Map();
const emit = (ev) => process.stdout.write(JSON.stringify(ev) + "\n");
const logger = {
  log(level, message) {
    if (level >= signalR.LogLevel.Warning) process.stderr.write(`[signalr] ${message}\n`);
  },
};

async function connect(c) {
  let builder = new signalR.HubConnectionBuilder()
    // without a token the client negotiates with the app at c.url (nginx),
    // which redirects it to the service
    .withUrl(c.url, Object.assign(c.accessToken ? { accessTokenFactory: () => c.accessToken } : {},
      // "transport": "WebSockets" | "ServerSentEvents" | "LongPolling"
      c.transport ? { transport: signalR.HttpTransportType[c.transport] } : {}))
    .configureLogging(logger);
  if (c.protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const conn = builder.build();
  if (c.serverTimeout) conn.serverTimeoutInMilliseconds = c.serverTimeout;
  for (const target of c.targets || ["newMessage"]) {
    conn.on(target, (...args) => { emit({ ev: "message", name: c.name, target, args: c.digest ? digest(args) : args }); });
  }
  // client results: {"results": {"method": value}} answers with value;
  // {"failures": {"method": "text"}} throws; both record the call
  for (const [target, value] of Object.entries(c.results || {})) {
    conn.on(target, (...args) => { emit({ ev: "invoked", name: c.name, target, args }); return value; });
  }
  for (const [target, text] of Object.entries(c.failures || {})) {
    conn.on(target, (...args) => { emit({ ev: "invoked", name: c.name, target, args }); throw new Error(text); });
  }
  conn.onclose((err) => emit({ ev: "closed", name: c.name, error: err ? err.message : null }));
  pool.set(c.name, conn);
  try {
    await conn.start();
    emit({ ev: "connected", name: c.name, connectionId: conn.connectionId });
  } catch (err) {
    emit({ ev: "failed", name: c.name, error: err.message });
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  const conn = pool.get(c.name);
  if (c.cmd === "connect") { await connect(c); return; }
  // (an empty Lua table arrives as {}: no arguments)
  const args = Array.isArray(c.args) ? c.args : [];
  if (c.cmd === "invoke" && conn) conn.send(c.target, ...args).catch(() => {});
  else if (c.cmd === "call" && conn) {
    conn.invoke(c.target, ...args)
      .then((result) => emit({ ev: "result", name: c.name, id: c.id, result: result === undefined ? null : result }))
      .catch((err) => emit({ ev: "call_failed", name: c.name, id: c.id, error: err.message }));
  }
  else if (c.cmd === "stop" && conn) await conn.stop();
  else if (c.cmd === "quit") {
    await Promise.all([...pool.values()].map((x) => x.stop().catch(() => {})));
    process.exit(0);
  }
});
rl.on("close", async () => {
  await Promise.all([...pool.values()].map((x) => x.stop().catch(() => {})));
  process.exit(0);
});
