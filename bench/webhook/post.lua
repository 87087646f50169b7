-- wrk script: POST a small JSON body to the webhook.
wrk.method = "POST"
wrk.body = '{"n": 21}'
wrk.headers["Content-Type"] = "application/json"
