-- Webhook triggers of `agentflow serve` for real: registration from the script and the API,
-- signatures (GitHub, Standard Webhooks with replays), header rules, methods, body limits and
-- types, the request mapped by Lua, immediate and wait responses, pause, conflicts.
local h = require "spec.helpers"
local json = require "dkjson"

local GH_SECRET = "gh-secret-for-tests"
-- the key is the 16 bytes "0123456789abcdef": base64 in the secret, hex for openssl
local STD_KEY_HEX = "30313233343536373839616263646566"
local function std_secret() return "whsec_MDEyMzQ1Njc4OWFiY2RlZg==" end

local function github_sig(body)
  local f = h.tmpfile(body)
  local _, out = h.sh("openssl dgst -sha256 -hmac " .. h.quote(GH_SECRET) .. " < " .. f)
  os.remove(f)
  return "sha256=" .. out:match("(%x+)%s*$")
end

local function std_sig(id, ts, body)
  local f = h.tmpfile(id .. "." .. ts .. "." .. body)
  local _, out = h.sh("openssl dgst -sha256 -mac HMAC -macopt hexkey:" .. STD_KEY_HEX ..
                      " -binary < " .. f .. " | base64")
  os.remove(f)
  return "v1," .. out:gsub("%s", "")
end

local SCRIPT = [[
local af = require "agentflow"
local wf = af.workflow "hooks" {}
wf:on(af.webhook { path = "gh/push", methods = { "POST", "PUT" },
  signature = { type = "github", secret = af.secret "GH_SECRET" },
  headers = { ["X-GitHub-Event"] = { one_of = { "push", "ping" } } },
  input = function(req)
    return { event = req.headers["x-github-event"], ref = req.body.ref, method = req.method }
  end })
wf:on(af.webhook { path = "std", signature = { type = "standard", secret = af.secret "STD_SECRET" } })
wf:on(af.webhook { path = "wait/me", response = { mode = "wait", timeout = "5s",
  fn = function(x)
    return { status = 201, headers = { ["X-Result"] = tostring(x.result.echo.sum) },
             body = "sum=" .. x.result.echo.sum }
  end } })
wf:on(af.webhook { path = "form", max_body = "1KB" })
wf:step("echo", function(ctx)
  local body = ctx.trigger.body
  return { sum = (type(body) == "table" and tonumber(body.a) or 0) + 1 }
end)
return wf
]]

describe("agentflow serve webhooks", function()
  local srv, wf
  local function count()
    local _, list = srv.call("GET", "/api/executions?limit=200&workflow_id=" .. wf.id)
    return #list.items
  end
  local function input_of(id)
    for _ = 1, 100 do
      local _, x = srv.call("GET", "/api/executions/" .. id)
      if x.status == "succeeded" or x.status == "failed" then return x.input, x end
      os.execute("sleep 0.05")
    end
  end

  setup(function()
    srv = h.serve(nil, "", "GH_SECRET=" .. GH_SECRET .. " STD_SECRET=" .. std_secret())
    local status
    status, wf = srv.call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    assert.are.equal(201, status, json.encode(wf))
  end)
  teardown(function()
    assert.are.equal(0, srv.close())
  end)

  it("registers the script's webhooks and lists them", function()
    local _, hooks = srv.call("GET", "/api/webhooks")
    local paths = {}
    for _, w in ipairs(hooks.items) do paths[#paths + 1] = w.path end
    assert.are.same({ "form", "gh/push", "std", "wait/me" }, paths)
    local _, triggers = srv.call("GET", "/api/workflows/" .. wf.id .. "/triggers")
    assert.are.equal(4, #triggers.items)
    assert.are.equal("script", triggers.items[1].source)
    assert.truthy(triggers.items[1].url:match("^/webhooks/"))
  end)

  it("checks GitHub signatures and header rules, and maps the request with Lua", function()
    local body = json.encode({ ref = "refs/heads/main" })
    local before = count()
    local status, out = srv.call("POST", "/webhooks/gh/push", body, "application/json",
                                 { "X-Hub-Signature-256: " .. github_sig(body), "X-GitHub-Event: push" })
    assert.are.equal(202, status, json.encode(out))
    local input = input_of(out.execution_id)
    assert.are.same({ event = "push", ref = "refs/heads/main", method = "POST" }, input)
    status = srv.call("PUT", "/webhooks/gh/push", body, "application/json",
                      { "X-Hub-Signature-256: " .. github_sig(body), "X-GitHub-Event: ping" })
    assert.are.equal(202, status)
    local after = count()
    assert.are.equal(before + 2, after)
    -- refused: nothing runs
    status, out = srv.call("POST", "/webhooks/gh/push", body, "application/json",
                           { "X-Hub-Signature-256: sha256=" .. string.rep("0", 64), "X-GitHub-Event: push" })
    assert.are.equal(401, status)
    assert.are.equal("string", type(out.error.message))
    assert.are.equal(401, (srv.call("POST", "/webhooks/gh/push", body, "application/json",
                                    { "X-GitHub-Event: push" })))
    assert.are.equal(401, (srv.call("POST", "/webhooks/gh/push", body .. " ", "application/json",
                                    { "X-Hub-Signature-256: " .. github_sig(body), "X-GitHub-Event: push" })))
    status, out = srv.call("POST", "/webhooks/gh/push", body, "application/json",
                           { "X-Hub-Signature-256: " .. github_sig(body), "X-GitHub-Event: delete" })
    assert.are.equal(403, status)
    assert.truthy(out.error.message:find("X-GitHub-Event", 1, true))
    local _, _, _, headers = srv.call("GET", "/webhooks/gh/push")
    assert.truthy(headers:find("HTTP/1.1 405", 1, true) and headers:find("Allow: POST,PUT", 1, true), headers)
    assert.are.equal(after, count())
  end)

  it("checks Standard Webhooks signatures, their age, and runs a replayed id once", function()
    local body = '{"type":"invoice.paid"}'
    local ts = tostring(os.time())
    local hdrs = { "webhook-id: msg_1", "webhook-timestamp: " .. ts,
                   "webhook-signature: v1,bm9wZQ== " .. std_sig("msg_1", ts, body) }
    local status, first = srv.call("POST", "/webhooks/std", body, "application/json", hdrs)
    assert.are.equal(202, status, json.encode(first))
    local before = count()
    local status2, again = srv.call("POST", "/webhooks/std", body, "application/json", hdrs)
    assert.are.equal(200, status2)
    assert.are.equal("duplicate", again.status)
    assert.are.equal(first.execution_id, again.execution_id)
    assert.are.equal(before, count())
    local old = tostring(os.time() - 400)
    status = srv.call("POST", "/webhooks/std", body, "application/json",
                      { "webhook-id: msg_2", "webhook-timestamp: " .. old,
                        "webhook-signature: " .. std_sig("msg_2", old, body) })
    assert.are.equal(401, status)
    status = srv.call("POST", "/webhooks/std", body, "application/json",
                      { "webhook-id: msg_3", "webhook-timestamp: " .. ts,
                        "webhook-signature: " .. std_sig("msg_3", ts, body .. "x") })
    assert.are.equal(401, status)
    assert.are.equal(before, count())
  end)

  it("answers in wait mode with what the response function makes of the result", function()
    local status, text, raw, headers = srv.call("POST", "/webhooks/wait/me", '{"a": 41}',
                                                "application/json")
    assert.are.equal(201, status, raw)
    assert.are.equal("sum=42", raw)
    assert.truthy(headers:find("X-Result: 42", 1, true), headers)
    assert.is_nil(text)
  end)

  it("decodes form bodies, limits sizes, and refuses unknown paths", function()
    local status, out = srv.call("POST", "/webhooks/form", "a=4&b=x+y", "application/x-www-form-urlencoded")
    assert.are.equal(202, status)
    local input, x = input_of(out.execution_id)
    assert.are.same({ a = "4", b = "x y" }, input.body)
    assert.are.equal(5, x.result.echo.sum)
    status, out = srv.call("POST", "/webhooks/form", "\1\2\3", "application/octet-stream")
    input = input_of(out.execution_id)
    assert.are.equal("AQID", input.body_base64)
    local before = count()
    assert.are.equal(413, (srv.call("POST", "/webhooks/form", string.rep("a", 2048), "text/plain")))
    assert.are.equal(400, (srv.call("POST", "/webhooks/form", "{oops", "application/json")))
    assert.are.equal(404, (srv.call("POST", "/webhooks/nope", "{}", "application/json")))
    assert.are.equal(before, count())
  end)

  it("stops firing while paused and refuses a path another workflow holds", function()
    local other = SCRIPT:gsub('"hooks"', '"thief"')
    local _, before = srv.call("GET", "/api/workflows?limit=200")
    local status, out = srv.call("POST", "/api/workflows", other, "text/x-lua")
    assert.are.equal(409, status)
    assert.truthy(out.error.message:find("gh/push", 1, true), out.error.message)
    local _, after = srv.call("GET", "/api/workflows?limit=200")
    assert.are.equal(#before.items, #after.items) -- nothing stored
    srv.call("POST", "/api/workflows/" .. wf.id .. "/pause")
    assert.are.equal(404, (srv.call("POST", "/webhooks/form", "a=1", "application/x-www-form-urlencoded")))
    srv.call("POST", "/api/workflows/" .. wf.id .. "/activate")
    assert.are.equal(202, (srv.call("POST", "/webhooks/form", "a=1", "application/x-www-form-urlencoded")))
  end)

  it("adds, moves and removes triggers through the API", function()
    local status, t = srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers",
                               json.encode({ type = "webhook", config = { path = "api/added" } }),
                               "application/json")
    assert.are.equal(201, status, json.encode(t))
    assert.are.equal("api", t.source)
    assert.are.equal(202, (srv.call("POST", "/webhooks/api/added", "{}", "application/json")))
    status = srv.call("PUT", "/api/triggers/" .. t.id,
                      json.encode({ config = { path = "api/moved" } }), "application/json")
    assert.are.equal(200, status)
    assert.are.equal(404, (srv.call("POST", "/webhooks/api/added", "{}", "application/json")))
    assert.are.equal(202, (srv.call("POST", "/webhooks/api/moved", "{}", "application/json")))
    status = srv.call("PUT", "/api/triggers/" .. t.id, json.encode({ active = false }), "application/json")
    assert.are.equal(200, status)
    assert.are.equal(404, (srv.call("POST", "/webhooks/api/moved", "{}", "application/json")))
    assert.are.equal(409, (srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers",
                                    json.encode({ type = "webhook", config = { path = "std" } }),
                                    "application/json")))
    assert.are.equal(422, (srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers",
                                    json.encode({ type = "carrier-pigeon" }), "application/json")))
    local bad_rule, refused = srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers",
                                       json.encode({ type = "webhook", config = { path = "api/rules",
                                         headers = { ["X-Kind"] = { pattern = "([" } } } }),
                                       "application/json")
    assert.are.equal(422, bad_rule)
    assert.truthy(refused.error.message:find("X-Kind", 1, true), refused.error.message)
    assert.are.equal(404, (srv.call("POST", "/webhooks/api/rules", "{}", "application/json")))
    assert.are.equal(400, (srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers", "{", "application/json")))
    assert.are.equal(415, (srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers", "x", "text/plain")))
    assert.are.equal(204, (srv.call("DELETE", "/api/triggers/" .. t.id)))
    assert.are.equal(404, (srv.call("DELETE", "/api/triggers/" .. t.id)))
    assert.are.equal(404, (srv.call("GET", "/api/workflows/00000000-0000-4000-8000-000000000000/triggers")))
  end)

  it("validates schedule triggers and shows when they fire next", function()
    local base = "/api/workflows/" .. wf.id .. "/triggers"
    local status, t = srv.call("POST", base, json.encode({ type = "schedule",
                               config = { cron = "@yearly", timezone = "UTC" } }), "application/json")
    assert.are.equal(201, status, json.encode(t))
    local year = tonumber(os.date("!%Y"))
    assert.are.equal(("%d-01-01T00:00:00.000Z"):format(year + 1), t.next_run_at)
    local _, list = srv.call("GET", base)
    local listed
    for _, item in ipairs(list.items) do
      if item.id == t.id then listed = item end
    end
    assert.are.equal(t.next_run_at, listed.next_run_at)
    for _, bad in ipairs({
      { { cron = "0 25 * * *" }, "hour '25' is out of range 0-23" },
      { { cron = "0 9 * * *", timezone = "Atlantis/Capital" }, "Atlantis/Capital" },
      { { cron = "0 9 * * *", window = { from = "09:00" } }, "window.from and window.to" },
      { { cron = "0 9 * * *", missed = "often" }, "missed is" },
      { { timezone = "UTC" }, "every: a positive duration" },
    }) do
      local code, refused = srv.call("POST", base, json.encode({ type = "schedule", config = bad[1] }),
                                     "application/json")
      assert.are.equal(422, code)
      assert.truthy(refused.error.message:find(bad[2], 1, true), refused.error.message)
    end
    local code = srv.call("PUT", "/api/triggers/" .. t.id, json.encode({ config = { cron = "* * *" } }),
                          "application/json")
    assert.are.equal(422, code)
    local _, still = srv.call("GET", base)
    local found
    for _, item in ipairs(still.items) do
      if item.id == t.id then found = item end
    end
    assert.is_not_nil(found)
    assert.are.equal("@yearly", found.config.cron) -- unchanged
    assert.are.equal(204, (srv.call("DELETE", "/api/triggers/" .. t.id)))
  end)
end)
