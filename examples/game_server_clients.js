// game_server_clients.js - real @microsoft/signalr clients for `make
// demo-server` (examples/game_server.lua): one per line of the tokens file
// (JSON {name, url, accessToken, protocol: "json"|"messagepack", room,
// move: [dx, dy]}).  Each invokes Join(room, name), sends five moves and
// two bad ones (a send: dropped; an invoke: answered with the hub error),
// listens to "state" for SECONDS in all, then prints what it saw.  Exits
// 1 if a client saw no state.
//   node game_server_clients.js TOKENS [SECONDS]
"use strict";
const fs = require("fs");
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

const lines = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map(JSON.parse);
const seconds = Number(process.argv[3] || 4);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (s) => `tick ${s.tick}: ` + s.players.map((p) => `${p.name} (${p.x}, ${p.y})`).join(", ");

let listening = true; // until every client's time is up (then none has left yet)
const end = Date.now() + seconds * 1000;

async function play(c) {
  const say = (text) => console.log(`${c.name}\t${text}`);
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(c.url, { accessTokenFactory: () => c.accessToken })
    .configureLogging(signalR.LogLevel.Error);
  if (c.protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const conn = builder.build();
  const seen = { ticks: 0, both: 0, first: null, last: null };
  conn.on("state", (s) => {
    if (!listening) return;
    seen.ticks++;
    if (s.players.length >= 2) seen.both++;
    if (!seen.first) seen.first = s;
    seen.last = s;
  });
  await conn.start();
  say(`connected (${c.protocol}) as ${conn.connectionId}`);
  const joined = await conn.invoke("Join", c.room, c.name);
  say(`Join(${JSON.stringify(c.room)}, ${JSON.stringify(c.name)}) -> ${JSON.stringify(joined)}`);
  for (let i = 0; i < 5; i++) {
    await conn.send("Move", c.move[0], c.move[1]);
    await sleep(150);
  }
  await conn.send("Move", "left", 0); // not numbers: the server drops it
  try {
    await conn.invoke("Move", 2, 0);
    say("invoke Move(2, 0) -> accepted?!");
  } catch (err) {
    say(`invoke Move(2, 0) -> error: ${err.message}`);
  }
  say(`sent Move(${c.move[0]}, ${c.move[1]}) 5 times, and Move("left", 0)`);
  return { c, conn, seen, say };
}

// what one client saw, once all have stopped listening
async function finish({ conn, seen, say }) {
  await conn.stop();
  say(`saw ${seen.ticks} state ticks` + (seen.ticks ? ` (#${seen.first.tick} to #${seen.last.tick}),`
    + ` both players in ${seen.both}` : ""));
  if (seen.last) say(`last state: ${show(seen.last)}`);
  return seen.ticks > 0;
}

setTimeout(() => { console.log("timed out"); process.exit(1); }, (seconds + 20) * 1000);
(async () => {
  const played = await Promise.all(lines.map((c) => play(c).catch((err) => {
    console.log(`${c.name}\tFAILED: ${err.message}`);
    return null;
  })));
  await sleep(Math.max(0, end - Date.now()));
  listening = false;
  const oks = await Promise.all(played.map((p) => (p ? finish(p) : false)));
  process.exit(played.every(Boolean) && oks.every(Boolean) ? 0 : 1);
})();
