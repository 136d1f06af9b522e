// The clients of bench/hub_load.sh: argv url token clients invoking rate
// secs hub_pid.  Connects `clients` @microsoft/signalr clients (WebSockets,
// JSON), one of which subscribes to the hub's feed and then reads nothing
// (its socket paused); `invoking` of the others call Add(k, 1) at `rate`
// per second each on a fixed schedule (round trips counted from the
// scheduled time, so a late answer hides nothing) for `secs` seconds,
// while the hub server's RSS (/proc/PID/status VmRSS) is sampled every
// 250 ms.  Prints one JSON line: connected, calls, answered, wrong, failed,
// p50_ms, p99_ms, max_ms, rss_kb {before, max, end}, stuck (its connection
// id), closed_early (clients other than the stuck one that closed).
"use strict";
const signalR = require("@microsoft/signalr");
const fs = require("fs");
const [url, token, nc, ni, rate, secs, hubPid] = process.argv.slice(2);
const logger = { log() {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rss = () => +(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${hubPid}/status`, "utf8"))[1]);

(async () => {
  const conns = [];
  let closedEarly = 0, stopping = false;
  for (let i = 0; i < +nc; i++) {
    const c = new signalR.HubConnectionBuilder()
      .withUrl(url, { accessTokenFactory: () => token, transport: signalR.HttpTransportType.WebSockets })
      .configureLogging(logger).build();
    c.serverTimeoutInMilliseconds = 600000;
    c.on("state", () => {});
    c.on("feed", () => {});
    c.onclose(() => { if (!stopping && i !== 0) closedEarly++; });
    conns.push(c);
  }
  for (let i = 0; i < conns.length; i += 50) await Promise.all(conns.slice(i, i + 50).map((c) => c.start()));
  const connected = conns.filter((c) => c.state === "Connected").length;
  const before = rss();
  // the stuck client: asks for the feed, then reads nothing more
  const stuck = conns[0];
  stuck.send("Subscribe");
  await sleep(50);
  stuck.connection.transport._webSocket._socket.pause();
  let max = before;
  const sampler = setInterval(() => { const r = rss(); if (r > max) max = r; }, 250);
  // the invoking clients: open loop on a fixed schedule
  const lat = [];
  let calls = 0, answered = 0, wrong = 0, failed = 0;
  const t0 = performance.now(), period = 1000 / +rate, end = t0 + +secs * 1000;
  const runners = conns.slice(1, 1 + +ni).map(async (c, idx) => {
    let k = 0;
    let due = t0 + (idx * period) / +ni;
    const inflight = [];
    while (due < end) {
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const sched = due, n = ++k;
      calls++;
      inflight.push(c.invoke("Add", n, 1).then((r) => {
        answered++;
        if (r !== n + 1) wrong++;
        lat.push(performance.now() - sched);
      }, () => { failed++; }));
      due += period;
    }
    await Promise.all(inflight);
  });
  await Promise.all(runners);
  clearInterval(sampler);
  const after = rss();
  stopping = true;
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : -1);
  console.log(JSON.stringify({ connected, calls, answered, wrong, failed,
    p50_ms: +q(0.5).toFixed(2), p99_ms: +q(0.99).toFixed(2), max_ms: +(lat[lat.length - 1] || -1).toFixed(2),
    rss_kb: { before, max, end: after }, stuck: stuck.connectionId, closed_early: closedEarly }));
  process.exit(0);
})().catch((e) => { process.stderr.write(String((e && e.stack) || e) + "\n"); process.exit(1); });
