// The Node peer: built-in fetch (keep-alive) + jsonwebtoken, signing a
// token per request as the Azure samples do.  argv: url aud key seconds body
"use strict";
const fs = require("fs");
const jwt = require("jsonwebtoken");
const [url, aud, key, secs, bodyFile] = process.argv.slice(2);
const body = fs.readFileSync(bodyFile, "utf8");
(async () => {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < secs * 1000) {
    const tok = jwt.sign({ aud }, key, { algorithm: "HS256", expiresIn: 3600 });
    const r = await fetch(url, { method: "POST", body,
      headers: { Authorization: "Bearer " + tok, "Content-Type": "application/json; charset=utf-8" } });
    await r.arrayBuffer();
    if (r.status !== 202) throw new Error("status " + r.status);
    n++;
  }
  console.log((n / ((performance.now() - t0) / 1000)).toFixed(1));
})();
