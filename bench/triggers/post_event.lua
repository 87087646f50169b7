-- wrk script: POST an event of type $EVENT_TYPE (a new id each time: the server makes one).
wrk.method = "POST"
wrk.body = '{"type": "' .. (os.getenv("EVENT_TYPE") or "bench.noise.seen") ..
           '", "data": {"amount": 150, "tier": "gold", "note": "a small event"}}'
wrk.headers["Content-Type"] = "application/json"
