-- Event triggers of `agentflow serve` for real: POST /api/events, subscriptions by type pattern,
-- `where` predicates and Lua filters, inputs, deliveries once per event and trigger, af.emit and
-- the core.emit step (one workflow starting another), the depth limit that stops loops, replay
-- (range, type, workflow, force), listing, retention, and what bad input gets.
local h = require "spec.helpers"
local json = require "dkjson"

local function orders_src(name)
  return h.workflow_src(name or "orders", [[af.event { type = "order.*", where = { amount = { gte = 100 } },
  filter = function(ev) return ev.data.ok ~= false end,
  input = function(ev) return { order = ev.data.id, amount = ev.data.amount, type = ev.type } end }]])
end
local ORDERS = orders_src()
local FAILURES = h.workflow_src("failures", 'af.event { type = "*.failed" }')

local UPSTREAM = [[
local af = require "agentflow"
local wf = af.workflow "upstream" {}
wf:step("work", function(ctx) return { count = ctx.trigger.count } end)
wf:step("announce", af.node "core.emit" {
  type = "stage.done", data = function(ctx) return { count = ctx.steps.work.count * 2 } end,
}, { after = "work" })
wf:step("tell", function(ctx) return af.emit("stage.told", { one = 1 }) end, { after = "announce" })
return wf
]]

local DOWNSTREAM = h.workflow_src("downstream", 'af.event { type = "stage.#" }')
local LOOP = h.workflow_src("loop", 'af.event { type = "loop.tick" }', [[
wf:step("again", function(ctx) af.emit("loop.tick", { n = (ctx.trigger.data.n or 0) + 1 }) return 1 end)]])

local function post(srv, body, ctype)
  return srv.call("POST", "/api/events", type(body) == "table" and json.encode(body) or body,
                  ctype or "application/json")
end

local deploy = h.deploy

-- The finished executions of a workflow, oldest first, once n are there.
local function runs(srv, wf, n) return h.executions(srv, wf, n, true) end

local function event_count(srv)
  local _, list = srv.call("GET", "/api/events?limit=200")
  return #list.items
end

describe("agentflow serve events", function()
  after_each(h.close_servers)

  it("refuses bad events with a clear error and stores nothing", function()
    local srv = h.serve()
    local cases = {
      { "{not json", 400, "malformed JSON" },
      { { data = 1 }, 400, "type" },
      { { type = "order..created" }, 400, "empty segment" },
      { { type = "order.*" }, 400, "type" },
      { { type = "a.b", extra = 1 }, 400, "unknown field 'extra'" },
      { { type = "a.b", id = string.rep("x", 80) }, 400, "id" },
      { { type = "a.b", id = 7 }, 400, "id" },
      { { type = "a.b", meta = "m" }, 400, "meta" },
      { { type = "a.b", meta = { depth = -1 } }, 400, "meta.depth" },
      { { type = "a.b", meta = { depth = 8 } }, 422, "depth limit" },
      { "[1, 2]", 400, "JSON object" },
    }
    for _, c in ipairs(cases) do
      local status, body = post(srv, c[1])
      assert.are.equal(c[2], status, json.encode(c[1]))
      assert.truthy(body.error.message:find(c[3], 1, true), body.error.message)
    end
    local status = post(srv, '{"type":"a.b"}', "text/plain")
    assert.are.equal(415, status)
    assert.are.equal(0, event_count(srv))
    for _, c in ipairs({ { {}, "from" }, { { from = 10, to = 5 }, "before" },
                         { { from = 0, type = "a..b" }, "type" }, { { from = "yesterday" }, "from" },
                         { { from = 0, force = "yes" }, "force" }, { { from = 0, x = 1 }, "x" } }) do
      local st, body = srv.call("POST", "/api/events/replay", json.encode(c[1]), "application/json")
      assert.are.equal(400, st, json.encode(c[1]))
      assert.truthy(body.error.message:find(c[2], 1, true), body.error.message)
    end
    assert.are.equal(0, srv.close())
  end)

  it("delivers events to the triggers they match, once per event and trigger", function()
    local srv = h.serve()
    local orders, failures = deploy(srv, ORDERS), deploy(srv, FAILURES)
    local status, body = post(srv, { type = "order.created", id = "o-1",
                                     data = { id = 1, amount = 150 } })
    assert.are.equal(202, status, json.encode(body))
    assert.are.equal(1, body.deliveries)
    assert.are.equal(1, #body.executions)
    status, body = post(srv, { type = "order.created", id = "o-2", data = { id = 2, amount = 50 } })
    assert.are.equal(0, body.deliveries) -- where: amount >= 100
    _, body = post(srv, { type = "order.created", data = { id = 3, amount = 500, ok = false } })
    assert.are.equal(0, body.deliveries) -- the filter says no
    _, body = post(srv, { type = "order.item.added", data = { id = 4, amount = 500 } })
    assert.are.equal(0, body.deliveries) -- * is one segment
    status, body = post(srv, { type = "payment.failed", id = "p-1", data = { reason = "card" } })
    assert.are.equal(1, body.deliveries)
    -- the same id again: nothing new
    status, body = post(srv, { type = "order.created", id = "o-1", data = { id = 1, amount = 150 } })
    assert.are.equal(200, status)
    assert.is_true(body.duplicate)
    assert.are.equal(0, body.deliveries)

    local got = runs(srv, orders, 1)
    os.execute("sleep 0.2")
    got = runs(srv, orders, 1)
    assert.are.equal(1, #got)
    assert.are.same({ order = 1, amount = 150, type = "order.created" }, got[1].input)
    local f = runs(srv, failures, 1)
    assert.are.equal(1, #f)
    assert.are.equal("p-1", f[1].input.id) -- without input: the event itself
    assert.are.equal("payment.failed", f[1].input.type)
    assert.are.same({ reason = "card" }, f[1].input.data)
    assert.are.equal(0, f[1].input.meta.depth)
    assert.are.equal(5, event_count(srv)) -- every event is stored, matched or not

    -- paused: its triggers get nothing
    srv.call("POST", "/api/workflows/" .. failures.id .. "/pause")
    os.execute("sleep 0.1")
    status, body = post(srv, { type = "job.failed" })
    assert.are.equal(0, body.deliveries)
    assert.are.equal(0, srv.close())
  end)

  it("lets a workflow start others by af.emit and the core.emit step", function()
    local srv = h.serve()
    local up, down = deploy(srv, UPSTREAM), deploy(srv, DOWNSTREAM)
    local status, x = srv.call("POST", "/api/workflows/" .. up.id .. "/execute?wait=5",
                               json.encode({ input = { count = 21 } }), "application/json")
    assert.are.equal(200, status, json.encode(x))
    assert.are.equal("succeeded", x.status, json.encode(x))
    local got = runs(srv, down, 2)
    assert.are.equal(2, #got)
    local types = { got[1].input.type, got[2].input.type }
    table.sort(types)
    assert.are.same({ "stage.done", "stage.told" }, types)
    for _, r in ipairs(got) do
      assert.are.equal(1, r.input.meta.depth)
      assert.are.equal(x.id, r.input.meta.execution_id)
      if r.input.type == "stage.done" then assert.are.same({ count = 42 }, r.input.data) end
    end
    assert.are.equal(0, srv.close())
  end)

  it("stops a workflow that triggers itself at the depth limit, with a clear error", function()
    local srv = h.serve(nil, nil, "AGENTFLOW_EVENTS_MAX_DEPTH=3")
    local loop = deploy(srv, LOOP)
    post(srv, { type = "loop.tick", data = { n = 0 } })
    local got = runs(srv, loop, 4)
    os.execute("sleep 0.3")
    got = runs(srv, loop, 4)
    assert.are.equal(4, #got) -- started by depths 0, 1, 2, 3; the fourth may not emit
    for i = 1, 3 do assert.are.equal("succeeded", got[i].status) end
    assert.are.equal("failed", got[4].status)
    assert.truthy(json.encode(got[4]):find("depth limit", 1, true), json.encode(got[4]))
    assert.are.equal(0, srv.close())
  end)

  it("replays stored events by range, type and workflow, once unless forced", function()
    local srv = h.serve()
    local orders = deploy(srv, ORDERS)
    for i = 1, 3 do
      post(srv, { type = "order.created", id = "r-" .. i, data = { id = i, amount = 100 * i } })
    end
    post(srv, { type = "order.cancelled", id = "r-4", data = { id = 4, amount = 400 } })
    assert.are.equal(4, #runs(srv, orders, 4))
    -- a workflow deployed later gets the past by replay, the first one nothing twice
    local failures = deploy(srv, FAILURES)
    post(srv, { type = "payment.failed", id = "r-5", data = {} })
    local late = deploy(srv, orders_src("late"))
    os.execute("sleep 0.1")
    local status, body = srv.call("POST", "/api/events/replay",
                                  json.encode({ from = 0, type = "order.created" }),
                                  "application/json")
    assert.are.equal(200, status, json.encode(body))
    assert.are.same({ events = 3, matched = 6, deliveries = 3, duplicates = 3 }, body) -- no next
    assert.are.equal(3, #runs(srv, late, 3))
    assert.are.equal(4, #runs(srv, orders))
    -- only one workflow's triggers, forced: delivered again
    status, body = srv.call("POST", "/api/events/replay",
                            json.encode({ from = "1970-01-01T00:00:00Z", workflow_id = orders.id,
                                          force = true }), "application/json")
    assert.are.same({ events = 5, matched = 4, deliveries = 4, duplicates = 0 }, body)
    assert.are.equal(8, #runs(srv, orders, 8))
    assert.are.equal(1, #runs(srv, failures, 1))
    -- a range that holds nothing
    status, body = srv.call("POST", "/api/events/replay",
                            json.encode({ from = "2001-01-01T00:00:00Z",
                                          to = "2001-01-02T00:00:00+02:00" }), "application/json")
    assert.are.same({ events = 0, matched = 0, deliveries = 0, duplicates = 0 }, body)
    assert.are.equal(0, srv.close())
  end)

  it("replays a long range in parts, from where the last part stopped", function()
    local srv = h.serve()
    for i = 1, 5 do post(srv, { type = "page.seen", id = "p-" .. i, data = { i = i } }) end
    local seen, cursor, parts = 0, nil, 0
    repeat
      local status, body = srv.call("POST", "/api/events/replay",
                                    json.encode({ from = 0, limit = 2, cursor = cursor }),
                                    "application/json")
      assert.are.equal(200, status, json.encode(body))
      seen = seen + body.events
      cursor = body.next_cursor
      parts = parts + 1
    until cursor == nil or parts > 5
    assert.are.equal(5, seen)
    assert.are.equal(3, parts) -- 2 + 2 + 1
    for _, c in ipairs({ { { from = 0, cursor = "junk" }, "cursor" },
                         { { from = 0, limit = 0 }, "limit" }, { { from = 0, cursor = 5 }, "cursor" } }) do
      local status, body = srv.call("POST", "/api/events/replay", json.encode(c[1]),
                                    "application/json")
      assert.are.equal(400, status, json.encode(c[1]))
      assert.truthy(body.error.message:find(c[2], 1, true), body.error.message)
    end
    assert.are.equal(0, srv.close())
  end)

  it("lists stored events by page and forgets them after events.retention", function()
    local t0 = 1780272000000
    local srv = h.serve(nil, nil, h.manual_clock(t0) ..
                        " AGENTFLOW_EVENTS_RETENTION=1h AGENTFLOW_RETENTION_INTERVAL=100ms")
    for i = 1, 5 do post(srv, { type = "tick.tock", id = "t-" .. i, data = { i = i } }) end
    local _, page = srv.call("GET", "/api/events?limit=2")
    assert.are.equal(2, #page.items)
    assert.are.equal("t-1", page.items[1].id)
    assert.are.equal("2026-06-01T00:00:00.000Z", page.items[1].created_at)
    local _, rest = srv.call("GET", "/api/events?limit=200&cursor=" .. page.next_cursor)
    assert.are.equal(3, #rest.items)
    local status = srv.call("GET", "/api/events?from=yesterday")
    assert.are.equal(400, status)
    srv.call("POST", "/api/clock", '{"advance":"2h"}', "application/json")
    post(srv, { type = "tick.tock", id = "t-6" })
    local n
    for _ = 1, 60 do
      n = event_count(srv)
      if n == 1 then break end
      os.execute("sleep 0.05")
    end
    assert.are.equal(1, n)
    assert.are.equal(0, srv.close())
  end)
end)
