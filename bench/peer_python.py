# The Python peer: requests.Session (keep-alive) + PyJWT, signing a token
# per request as the Azure samples do.  argv: url aud key seconds
import sys
import time

import jwt
import requests

url, aud, key, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
body = open(sys.argv[5]).read()
s = requests.Session()
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < secs:
    tok = jwt.encode({"aud": aud, "exp": int(time.time()) + 3600}, key, algorithm="HS256")
    r = s.post(url, data=body, headers={"Authorization": "Bearer " + tok,
                                        "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 202, r.status_code
    n += 1
print("%.1f" % (n / (time.monotonic() - t0)))
