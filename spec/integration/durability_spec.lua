-- Durability of `agentflow serve` for real: accepted executions survive SIGKILL, completed steps
-- are not run again, delays wake at their original times, long waits park in storage, retries
-- go on from the last checkpoint, and a workflow's concurrency limit holds.
local h = require "spec.helpers"
local json = require "dkjson"

local wait_for = h.wait_execution

local DONE = { succeeded = true, failed = true, cancelled = true }

local DELAYED = [[
local af = require "agentflow"
local wf = af.workflow "durable" {}
local a = wf:step("a", function(ctx) return { at = af.now(), num = ctx.trigger.num } end)
local d = wf:step("wait", af.delay "3s", { after = a })
wf:step("b", function(ctx) return { at = af.now(), a = ctx.steps.a } end, { after = d })
return wf
]]

describe("agentflow serve durability", function()
  local srv
  after_each(function()
    if srv then srv.close() end
    srv = nil
  end)

  it("finishes every accepted execution after SIGKILL, without running completed steps again "
     .. "and waking delays at their original times", function()
    srv = h.serve()
    local _, w = srv.call("POST", "/api/workflows", DELAYED, "text/x-lua")
    local ids, first = {}, {}
    for i = 1, 20 do
      local status, x = srv.call("POST", "/api/workflows/" .. w.id .. "/execute",
                                 json.encode({ input = { num = i } }), "application/json")
      assert.are.equal(202, status)
      ids[i] = x.id
    end
    for i, id in ipairs(ids) do -- step a is checkpointed; the delay is waiting
      local x = wait_for(srv, id, { waiting = true, running = true })
      for _ = 1, 40 do
        if x.steps.a and x.steps.wait then break end
        os.execute("sleep 0.05")
        _, x = srv.call("GET", "/api/executions/" .. id)
      end
      assert.are.equal("succeeded", x.steps.a.status)
      assert.are.equal("waiting", x.steps.wait.status)
      assert.are.equal(i, x.steps.a.output.num, json.encode(x))
      first[i] = x.steps.a.output.at
    end
    assert.truthy(srv.kill())
    os.execute("sleep 1.2") -- down for a while: restarting does not start the delay again
    srv = h.serve(srv.data)
    for i, id in ipairs(ids) do
      local x = wait_for(srv, id, DONE, 15)
      assert.are.equal("succeeded", x.status, json.encode(x))
      assert.are.equal(first[i], x.steps.a.output.at) -- not run again
      assert.are.equal(first[i], x.result.b.a.at)
      local waited = x.result.b.at - first[i]
      assert.truthy(waited >= 2900 and waited < 4200,
                    "the delay ended " .. waited .. " ms after step a (3 s expected)")
    end
    local _, ready = srv.call("GET", "/readyz")
    assert.are.same({ ready = 0, leased = 0, dead = 0 }, ready.jobs) -- every job completed
  end)

  it("parks executions in long waits: nothing runs while they wait", function()
    srv = h.serve(nil, "", "AGENTFLOW_WORKER_PARK_AFTER=1s")
    local _, w = srv.call("POST", "/api/workflows", DELAYED, "text/x-lua")
    local _, x = srv.call("POST", "/api/workflows/" .. w.id .. "/execute")
    local parked = wait_for(srv, x.id, { waiting = true }, 5)
    assert.are.equal("waiting", parked.status)
    assert.truthy(parked.wake_at ~= json.null)
    local _, ready = srv.call("GET", "/readyz")
    assert.are.equal(0, ready.running) -- parked in storage, not held by a worker
    local done = wait_for(srv, x.id, DONE, 10)
    assert.are.equal("succeeded", done.status)
    local waited = done.result.b.at - done.steps.a.output.at
    assert.truthy(waited >= 2900 and waited < 4200, waited)
  end)

  it("retries a failed execution from its last checkpoint", function()
    srv = h.serve(nil, "", "FLAKY_ANSWER=")
    local script = [[
local af = require "agentflow"
local wf = af.workflow "retry-me" {}
local a = wf:step("a", function(ctx) return { at = af.now() } end)
wf:step("b", function(ctx)
  if ctx.trigger.fail_once and not ctx.execution.retried then error("boom") end
  return "ok"
end, { after = a })
return wf
]]
    local _, w = srv.call("POST", "/api/workflows", script, "text/x-lua")
    local status, x = srv.call("POST", "/api/workflows/" .. w.id .. "/execute?wait=5",
                               json.encode({ input = { fail_once = true } }), "application/json")
    assert.are.equal(200, status)
    assert.are.equal("failed", x.status)
    assert.truthy(x.error:find("boom", 1, true), x.error)
    local first_a = x.steps.a.output.at
    assert.are.equal(409, (srv.call("POST", "/api/executions/" .. x.id .. "/cancel")))
    status = srv.call("POST", "/api/executions/" .. x.id .. "/retry")
    assert.are.equal(202, status)
    local again = wait_for(srv, x.id, DONE, 5)
    -- step a is not run again; b fails again (the script fails whenever fail_once is set), which
    -- shows the retry really ran it
    assert.are.equal(first_a, again.steps.a.output.at)
    assert.are.equal("failed", again.status)
    assert.are.equal(2, again.attempt)
    local _, ok = srv.call("POST", "/api/workflows/" .. w.id .. "/execute?wait=5")
    assert.are.equal("succeeded", ok.status)
    assert.are.equal(409, (srv.call("POST", "/api/executions/" .. ok.id .. "/retry")))
    assert.are.equal(404, (srv.call("POST", "/api/executions/00000000-0000-4000-8000-000000000000/retry")))
  end)

  it("dead-letters an execution whose runs keep dying with the process", function()
    srv = h.serve()
    local script = [[
local af = require "agentflow"
local wf = af.workflow "crasher" {}
wf:step("long", function() af.sleep(60000) return 1 end)
return wf
]]
    local _, w = srv.call("POST", "/api/workflows", script, "text/x-lua")
    local _, x = srv.call("POST", "/api/workflows/" .. w.id .. "/execute")
    for _ = 1, 5 do -- each start counts; the process dies during each run
      wait_for(srv, x.id, { running = true }, 5)
      srv.kill()
      srv = h.serve(srv.data)
    end
    local dead = wait_for(srv, x.id, DONE, 5)
    assert.are.equal("failed", dead.status)
    assert.truthy(dead.error:find("started 5 times", 1, true), dead.error)
    local _, letters = srv.call("GET", "/api/dead-letters")
    assert.are.equal(x.id, letters.items[1].execution_id)
  end)

  it("holds a workflow's concurrency limit: the rest wait in the queue", function()
    srv = h.serve()
    local script = [[
local af = require "agentflow"
local wf = af.workflow "one-at-a-time" { concurrency = 2 }
wf:step("a", function(ctx) local t = af.now() af.sleep(300) return { from = t, to = af.now() } end)
return wf
]]
    local _, w = srv.call("POST", "/api/workflows", script, "text/x-lua")
    local status, bulk = srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                                  json.encode({ inputs = { {}, {}, {}, {}, {}, {} } }),
                                  "application/json")
    assert.are.equal(202, status)
    assert.are.equal(6, bulk.count)
    local spans = {}
    for i, id in ipairs(bulk.ids) do
      local x = wait_for(srv, id, DONE, 10)
      assert.are.equal("succeeded", x.status)
      spans[i] = x.result.a
    end
    for _, s in ipairs(spans) do -- at no moment do more than 2 run
      local overlapping = 0
      for _, o in ipairs(spans) do
        if o.from <= s.from and s.from < o.to then overlapping = overlapping + 1 end
      end
      assert.truthy(overlapping <= 2, "more than 2 ran at once")
    end
  end)
end)
