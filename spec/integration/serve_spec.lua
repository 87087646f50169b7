-- `agentflow serve` for real: the binary on a free loopback port with its SQLite store in a temp
-- directory, spoken to over HTTP (curl): health, workflow definitions, bad input, restarts.
local h = require "spec.helpers"
local json = require "dkjson"

local DATA, SRV

local function start() SRV = h.serve(DATA) end
local function stop()
  local code = SRV.stop()
  SRV = nil
  return code
end
local function call(...) return SRV.call(...) end

local SCRIPT = [[
local af = require "agentflow"
local wf = af.workflow "greeter" { description = "says hello" }
wf:step("hi", function(ctx) return "hello" end)
return wf
]]

describe("agentflow serve", function()
  setup(function()
    DATA = os.tmpname()
    os.remove(DATA)
    start()
  end)
  teardown(function()
    if SRV then stop() end
    h.sh("rm -rf " .. DATA)
  end)

  it("answers health and readiness", function()
    local status, body = call("GET", "/healthz")
    assert.are.equal(200, status)
    assert.are.equal("ok", body.status)
    status, body = call("GET", "/readyz")
    assert.are.equal(200, status)
    assert.are.equal("sqlite", body.store)
  end)

  it("stores a workflow from a script that compiles, in both body forms", function()
    local status, w = call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    assert.are.equal(201, status)
    assert.are.equal("greeter", w.name)
    assert.are.equal("says hello", w.description)
    assert.are.equal(1, w.version)
    assert.truthy(w.id:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
    local status2, w2 = call("POST", "/api/workflows", json.encode({ source = SCRIPT, name = "other" }),
                             "application/json")
    assert.are.equal(201, status2)
    assert.are.equal("other", w2.name)
    local _, got = call("GET", "/api/workflows/" .. w.id)
    assert.are.equal(SCRIPT, got.source)
  end)

  it("refuses bad input with the right status and stores nothing", function()
    local _, before = call("GET", "/api/workflows?limit=200")
    local status, body = call("POST", "/api/workflows", "local af = require 'agentflow'\nreturn (",
                              "text/x-lua")
    assert.are.equal(422, status)
    assert.are.equal("unprocessable", body.error.code)
    assert.truthy(body.error.message:find("workflow.lua:2:", 1, true), body.error.message)
    status, body = call("POST", "/api/workflows", "{not json", "application/json")
    assert.are.equal(400, status)
    assert.are.equal("bad_request", body.error.code)
    status = call("POST", "/api/workflows", "x", "text/plain")
    assert.are.equal(415, status)
    status = call("POST", "/api/workflows", json.encode({ name = "no source" }), "application/json")
    assert.are.equal(422, status)
    status = call("POST", "/api/workflows", string.rep("x", 2 * 1024 * 1024), "text/x-lua")
    assert.are.equal(413, status)
    status, body = call("GET", "/api/workflows/00000000-0000-4000-8000-000000000000")
    assert.are.equal(404, status)
    assert.are.equal("not_found", body.error.code)
    status = call("PATCH", "/api/workflows")
    assert.are.equal(405, status)
    status = call("GET", "/api/workflows?limit=0")
    assert.are.equal(400, status)
    local _, after = call("GET", "/api/workflows?limit=200")
    assert.are.equal(#before.items, #after.items)
  end)

  it("pages through workflows with a cursor", function()
    for i = 1, 3 do
      call("POST", "/api/workflows", json.encode({ source = SCRIPT, name = "page-" .. i }),
           "application/json")
    end
    local seen, cursor, pages = {}, nil, 0
    repeat
      local _, page = call("GET", "/api/workflows?limit=2" .. (cursor and ("&cursor=" .. cursor) or ""))
      for _, w in ipairs(page.items) do
        assert.is_nil(seen[w.id])
        seen[w.id] = true
      end
      cursor = page.next_cursor ~= json.null and page.next_cursor or nil
      pages = pages + 1
    until not cursor
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.is_true(n >= 5)
    assert.is_true(pages >= 3)
  end)

  it("stores new versions and deletes", function()
    local _, w = call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    local v2 = SCRIPT:gsub('"says hello"', '"says hello twice"')
    local status, updated = call("PUT", "/api/workflows/" .. w.id, v2, "text/x-lua")
    assert.are.equal(200, status)
    assert.are.equal(2, updated.version)
    assert.are.equal("says hello twice", updated.description)
    status = call("PUT", "/api/workflows/" .. w.id, "return 5", "text/x-lua")
    assert.are.equal(422, status)
    local _, got = call("GET", "/api/workflows/" .. w.id)
    assert.are.equal(2, got.version) -- the broken script changed nothing
    assert.are.equal(204, (call("DELETE", "/api/workflows/" .. w.id)))
    assert.are.equal(404, (call("GET", "/api/workflows/" .. w.id)))
  end)

  it("executes a stored workflow: waits for it, or answers 202 and is polled", function()
    local script = [[
local af = require "agentflow"
local wf = af.workflow "adder" { sample_input = { a = 1, b = 2 } }
local sum = wf:step("sum", function(ctx) return ctx.trigger.a + ctx.trigger.b end)
wf:step("slow", function(ctx) af.sleep(300) return ctx.steps.sum * 10 end, { after = sum })
return wf
]]
    local _, w = call("POST", "/api/workflows", script, "text/x-lua")
    local status, x = call("POST", "/api/workflows/" .. w.id .. "/execute?wait=10",
                           json.encode({ input = { a = 2, b = 3 } }), "application/json")
    assert.are.equal(200, status)
    assert.are.equal("succeeded", x.status)
    assert.are.equal(50, x.result.slow)
    assert.are.equal(5, x.steps.sum.output) -- checkpointed step by step
    assert.are.equal(2, x.input.a)
    status, x = call("POST", "/api/workflows/" .. w.id .. "/execute")
    assert.are.equal(202, status)
    -- the workflow ran before, so its limit is known and a slot is free: it is created running
    assert.are.equal("running", x.status)
    local got
    for _ = 1, 100 do
      _, got = call("GET", "/api/executions/" .. x.id)
      if got.status ~= "running" and got.status ~= "queued" then break end
      os.execute("sleep 0.05")
    end
    assert.are.equal("succeeded", got.status)
    assert.are.equal(30, got.result.slow) -- the sample input
    status = call("POST", "/api/workflows/" .. w.id .. "/execute?wait=0.05")
    assert.are.equal(202, status) -- not finished within the wait
    assert.are.equal(404, (call("GET", "/api/executions/00000000-0000-4000-8000-000000000000")))
    assert.are.equal(404, (call("POST", "/api/workflows/00000000-0000-4000-8000-000000000000/execute")))
    assert.are.equal(400, (call("POST", "/api/workflows/" .. w.id .. "/execute", "{oops",
                                "application/json")))
  end)

  it("answers a waited execution exactly as it is stored", function()
    local script = [[
local af = require "agentflow"
local wf = af.workflow "shapes" {}
local vip = wf:step("vip", af.condition(function(ctx) return ctx.trigger.vip end))
wf:step("gold", function(ctx) af.log("gold") return { tier = "gold" } end, { after = vip.yes })
local flaky = wf:step("flaky", af.node "core.fail" { until_attempt = 2 },
  { retry = { attempts = 2, initial = "1ms" } })
wf:step("boom", function(ctx) if ctx.trigger.boom then error("no luck") end return 1 end,
  { after = flaky, on_error = "continue" })
return wf
]]
    local _, w = call("POST", "/api/workflows", script, "text/x-lua")
    -- the first run of a workflow starts from the queue; later ones start in a reserved slot
    for _, input in ipairs({ { vip = true }, { vip = false }, { vip = true, boom = true } }) do
      local status, x = call("POST", "/api/workflows/" .. w.id .. "/execute?wait=10",
                             json.encode({ input = input }), "application/json")
      assert.are.equal(200, status)
      local _, stored = call("GET", "/api/executions/" .. x.id)
      assert.are.same(stored, x)
      assert.are.equal(1, x.attempt)
      assert.are.equal(2, x.steps.flaky.attempts)
      assert.are.equal(input.vip and "yes" or "no", x.steps.vip.port)
    end
  end)

  it("records how many attempts each checkpointed step took", function()
    local script = [[
local af = require "agentflow"
local wf = af.workflow "flaky" {}
wf:step("flaky", af.node "core.fail" { until_attempt = 3 }, { retry = { attempts = 3, initial = "1ms" } })
return wf
]]
    local _, w = call("POST", "/api/workflows", script, "text/x-lua")
    local status, x = call("POST", "/api/workflows/" .. w.id .. "/execute?wait=10")
    assert.are.equal(200, status)
    assert.are.equal("succeeded", x.status)
    assert.are.equal(3, x.steps.flaky.attempts)
  end)

  it("cancels a running execution, keeps its log, pauses and activates workflows", function()
    local script = [[
local af = require "agentflow"
local wf = af.workflow "sleeper" {}
local a = wf:step("first", function() af.log("starting") return 1 end)
wf:step("nap", function() af.sleep(60000) return 2 end, { after = a })
return wf
]]
    local _, w = call("POST", "/api/workflows", script, "text/x-lua")
    local _, x = call("POST", "/api/workflows/" .. w.id .. "/execute")
    os.execute("sleep 0.2")
    local status, c = call("POST", "/api/executions/" .. x.id .. "/cancel")
    assert.are.equal(202, status)
    assert.are.equal("cancelling", c.status)
    local got
    for _ = 1, 100 do
      _, got = call("GET", "/api/executions/" .. x.id)
      if got.status ~= "running" then break end
      os.execute("sleep 0.05")
    end
    assert.are.equal("cancelled", got.status)
    assert.are.equal(409, (call("POST", "/api/executions/" .. x.id .. "/cancel")))
    local _, logs = call("GET", "/api/executions/" .. x.id .. "/logs")
    local text = {}
    for i, l in ipairs(logs.items) do text[i] = (l.step ~= json.null and l.step or "") .. " " .. l.message end
    text = table.concat(text, "\n")
    assert.truthy(text:find("first starting", 1, true), text)
    assert.are.equal("succeeded", got.steps.first.status) -- checkpointed, not logged again
    assert.truthy(text:find("cancelled through the API", 1, true), text)
    local _, paused = call("POST", "/api/workflows/" .. w.id .. "/pause")
    assert.are.equal("paused", paused.status)
    local _, active = call("POST", "/api/workflows/" .. w.id .. "/activate")
    assert.are.equal("active", active.status)
  end)

  it("stops on SIGTERM with status 0 and keeps its data across a restart", function()
    local _, w = call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    local log = SRV.log
    assert.are.equal(0, stop())
    assert.truthy(h.read(log):find("SIGTERM: stopping", 1, true))
    start()
    local status, got = call("GET", "/api/workflows/" .. w.id)
    assert.are.equal(200, status)
    assert.are.equal("greeter", got.name)
  end)
end)
