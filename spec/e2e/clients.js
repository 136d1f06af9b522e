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
//   {"cmd":"stream",...} {"cmd":"cancel",...} {"cmd":"upload",...}: streams (below)
//   {"cmd":"stop","name":"a"}    {"cmd":"quit"}
//   connect takes "tally":true: the client counts the completions it reads
//   per invocation id (a second one for an id, which the client library
//   would drop unseen, is a duplicate: "dups" in the loop events, and
//   "completions" all it read)
//   {"cmd":"loop","name":"a","id":"L1","target":"Add","args":[100]}: invoke
//   target with [k, ...args] (k = 1, 2, ...: the call's number), the next
//   call when the last one settled ("parallel":n keeps n in flight,
//   "pause":ms waits between calls), until "unloop" or the connection
//   closes; "check":"sum": a result other than the arguments' sum is wrong
//   {"cmd":"unloop","name":"a"}: no more calls; when the calls in flight
//   have settled (or at once) the loop's end is reported (loop_done)
//   {"cmd":"loop_report"}: one "loops" event with every loop's counts now
// events: connected {name, connectionId} | message {name, target, args}
//         closed {name, error} | failed {name, error}
//         result {name, id, result} | call_failed {name, id, error}
//         loop_done {name, id, sent, results, failed, pending, wrong, dups,
//           completions, errors: {text: count}, closed, state} | loops {loops: {name: {...}}}
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
  if (c.tally) {
    // count completions per invocation id as they are read off the wire
    const protocol = c.protocol === "messagepack" ? new MessagePackHubProtocol() : new signalR.JsonHubProtocol();
    const parse = protocol.parseMessages.bind(protocol);
    const seen = new Map();
    tallies.set(c.name, { seen, dups: 0, completions: 0 });
    protocol.parseMessages = (data, log) => {
      const messages = parse(data, log);
      for (const m of messages) {
        if (m.type === signalR.MessageType.Completion) {
          const n = (seen.get(m.invocationId) || 0) + 1;
          seen.set(m.invocationId, n);
          tallies.get(c.name).completions++;
          if (n > 1) tallies.get(c.name).dups++;
        }
      }
      return messages;
    };
    builder = builder.withHubProtocol(protocol);
  } else if (c.protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
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
  conn.onclose((err) => {
    const l = loops.get(c.name);
    if (l) { l.closed = true; loopSettled(l); }
    emit({ ev: "closed", name: c.name, error: err ? err.message : null });
  });
  pool.set(c.name, conn);
  try {
    await conn.start();
    emit({ ev: "connected", name: c.name, connectionId: conn.connectionId });
  } catch (err) {
    emit({ ev: "failed", name: c.name, error: err.message });
  }
}

// ===== call loops =====
const tallies = new Map();
const loops = new Map();
const streams = new Map();

function loopState(l) {
  const t = tallies.get(l.name);
  return { name: l.name, id: l.id, sent: l.sent, results: l.results, failed: l.failed,
    pending: l.sent - l.results - l.failed, wrong: l.wrong, dups: t ? t.dups : null,
    completions: t ? t.completions : null,
    errors: l.errors, closed: l.closed, state: l.conn.state };
}

// The loop's end, once: stopped (or its connection gone) and nothing in flight.
function loopSettled(l) {
  if (l.done || l.sent !== l.results + l.failed) return;
  if (!l.stopped && l.conn.state === signalR.HubConnectionState.Connected) return;
  l.done = true;
  emit(Object.assign({ ev: "loop_done" }, loopState(l)));
}

function loopNext(l) {
  if (l.stopped || l.conn.state !== signalR.HubConnectionState.Connected) return loopSettled(l);
  l.sent++;
  const args = [l.sent, ...l.args];
  l.conn.invoke(l.target, ...args)
    .then((result) => {
      l.results++;
      if (l.check === "sum" && result !== args.reduce((a, b) => a + b, 0)) l.wrong++;
    })
    .catch((err) => {
      l.failed++;
      l.errors[err.message] = (l.errors[err.message] || 0) + 1;
    })
    .then(() => {
      if (l.pause) setTimeout(() => loopNext(l), l.pause);
      else loopNext(l);
    });
}

function startLoop(c, conn) {
  const l = { name: c.name, id: c.id, conn, target: c.target, args: Array.isArray(c.args) ? c.args : [],
    check: c.check, pause: c.pause || 0, sent: 0, results: 0, failed: 0, wrong: 0, errors: {},
    closed: loops.has(c.name) ? loops.get(c.name).closed : false, stopped: false, done: false };
  loops.set(c.name, l);
  for (let i = 0; i < (c.parallel || 1); i++) loopNext(l);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  const conn = pool.get(c.name);
  if (c.cmd === "connect") { await connect(c); return; }
  // (an empty Lua table arrives as {}: no arguments; "__NaN__" is NaN,
  // which JSON cannot write: the MessagePack protocol sends it)
  const args = (Array.isArray(c.args) ? c.args : []).map((v) => (v === "__NaN__" ? NaN : v));
  if (c.cmd === "invoke" && conn) conn.send(c.target, ...args).catch(() => {});
  else if (c.cmd === "call" && conn) {
    conn.invoke(c.target, ...args)
      .then((result) => emit({ ev: "result", name: c.name, id: c.id, result: result === undefined ? null : result }))
      .catch((err) => emit({ ev: "call_failed", name: c.name, id: c.id, error: err.message }));
  }
  else if (c.cmd === "stop" && conn) await conn.stop();
  // a stream from the hub: {"cmd":"stream","name","id","target","args"}
  // emits stream_item {name,id,item} per item, then stream_done {name,id,
  // error}; {"cmd":"cancel","name","id"} disposes of it (a CancelInvocation)
  else if (c.cmd === "stream" && conn) {
    const sub = conn.stream(c.target, ...args).subscribe({
      next: (item) => emit({ ev: "stream_item", name: c.name, id: c.id, item }),
      complete: () => emit({ ev: "stream_done", name: c.name, id: c.id, error: null }),
      error: (err) => emit({ ev: "stream_done", name: c.name, id: c.id, error: err.message }),
    });
    streams.set(c.name + "/" + c.id, sub);
  }
  else if (c.cmd === "cancel") {
    const sub = streams.get(c.name + "/" + c.id);
    if (sub) sub.dispose();
  }
  // a stream to the hub: {"cmd":"upload","name","id","target","args",
  // "items":[...]}: invoke with a Subject after args, then each item,
  // then complete; emits result/call_failed as "call" does
  else if (c.cmd === "upload" && conn) {
    const subject = new signalR.Subject();
    conn.invoke(c.target, ...args, subject)
      .then((result) => emit({ ev: "result", name: c.name, id: c.id, result: result === undefined ? null : result }))
      .catch((err) => emit({ ev: "call_failed", name: c.name, id: c.id, error: err.message }));
    for (const item of c.items || []) subject.next(item);
    subject.complete();
  }
  else if (c.cmd === "loop" && conn) startLoop(c, conn);
  else if (c.cmd === "unloop" && loops.has(c.name)) {
    const l = loops.get(c.name);
    l.stopped = true;
    loopSettled(l);
  }
  else if (c.cmd === "loop_report") {
    const out = {};
    for (const [name, l] of loops) out[name] = loopState(l);
    emit({ ev: "loops", loops: out });
  }
  else if (c.cmd === "quit") {
    await Promise.all([...pool.values()].map((x) => x.stop().catch(() => {})));
    process.exit(0);
  }
});
rl.on("close", async () => {
  await Promise.all([...pool.values()].map((x) => x.stop().catch(() => {})));
  process.exit(0);
});
