// demo_clients.js - real @microsoft/signalr clients for `make demo`: one
// per line of tokens (JSON {name, url, accessToken} from hub:negotiate);
// logs what each receives, exits when every client got "demoDone".
"use strict";
const fs = require("fs");
const signalR = require("@microsoft/signalr");

const lines = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map(JSON.parse);
let left = lines.length;
for (const c of lines) {
  const conn = new signalR.HubConnectionBuilder()
    .withUrl(c.url, { accessTokenFactory: () => c.accessToken })
    .configureLogging(signalR.LogLevel.Error)
    .build();
  conn.on("newMessage", (from, text) => {
    console.log(`${c.name}\t<- newMessage(${JSON.stringify(from)}, ${JSON.stringify(text)})`);
  });
  conn.on("demoDone", () => {
    conn.stop().then(() => { if (--left === 0) process.exit(0); });
  });
  conn.start().then(
    () => console.log(`${c.name}\tconnected as ${conn.connectionId}`),
    (err) => { console.log(`${c.name}\tFAILED to connect: ${err.message}`); process.exit(1); });
}
setTimeout(() => { console.log("timed out"); process.exit(1); }, 30000);
