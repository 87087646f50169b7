-- Schedule triggers of `agentflow serve` for real, on a manual clock (AGENTFLOW_CLOCK) moved by
-- POST /api/clock: fires at their times across daylight-saving changes, missed runs after a
-- restart and a pause (skip, run_once, run_all), overlap (allow, skip, queue), next_run_at, and
-- a restart that neither loses nor doubles a fire.
local h = require "spec.helpers"
local json = require "dkjson"

local T0 = 1780272000000 -- 2026-06-01T00:00:00Z
local MIN = 60000

local function script(name, schedule, steps)
  return h.workflow_src(name, "af.schedule " .. schedule, steps)
end
local function deploy(srv, name, schedule, steps) return h.deploy(srv, script(name, schedule, steps)) end
local advance = h.advance
local runs = h.executions -- (srv, wf, n): oldest first, once n are there

local function scheduled(_, items)
  local out = {}
  for _, x in ipairs(items) do
    out[#out + 1] = x.input.scheduled_at .. (x.input.catchup and " catchup" or "")
  end
  table.sort(out)
  return out
end

local clock_env = h.manual_clock

local function serve(data, env) return h.serve(data, nil, env) end

describe("agentflow serve schedules", function()
  after_each(h.close_servers)

  it("refuses a manual clock that is not one, and has no clock API on the system clock", function()
    local r = h.run({ "serve", "--listen", "127.0.0.1:0", "--data", "/tmp/af-never" },
                    { AGENTFLOW_CLOCK = "manual@soon" })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("clock", 1, true), r.stderr)
    local srv = serve()
    local status = srv.call("POST", "/api/clock", '{"advance":"1h"}', "application/json")
    assert.are.equal(404, status)
    assert.are.equal(0, srv.close())
  end)

  it("moves af.sleep with the manual clock as it moves delays", function()
    local srv = serve(nil, clock_env(T0))
    local wf = h.deploy(srv, [[
local af = require "agentflow"
local wf = af.workflow "sleeper" {}
wf:step("nap", function(ctx) af.sleep("1h") return af.now() end)
return wf
]])
    local status, x = srv.call("POST", "/api/workflows/" .. wf.id .. "/execute", "{}",
                               "application/json")
    assert.are.equal(202, status, json.encode(x))
    os.execute("sleep 0.3") -- real time passing does not end an hour's sleep
    assert.are.equal("running", h.wait_execution(srv, x.id, { running = true }).status)
    advance(srv, "1h")
    local done = h.wait_execution(srv, x.id)
    assert.are.equal("succeeded", done.status)
    assert.are.equal(T0 + 3600000, done.result.nap)
    assert.are.equal(0, srv.close())
  end)

  it("fires at the zone's times across both daylight-saving changes of Berlin", function()
    -- 2026-03-28T12:00Z; 02:30 does not exist in Berlin on 03-29, 02:30 happens twice on 10-25
    local srv = serve(nil, clock_env(1774699200000))
    local wf = deploy(srv, "berlin", '{ cron = "30 2 * * *", timezone = "Europe/Berlin" }')
    local _, trig = srv.call("GET", "/api/workflows/" .. wf.id .. "/triggers")
    assert.are.equal("2026-03-29T01:00:00.000Z", trig.items[1].next_run_at) -- 03:00 CEST
    advance(srv, "2d")
    assert.are.same({ "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z" },
                    scheduled(srv, runs(srv, wf, 2)))
    assert.are.equal(0, srv.close())
    srv = serve(nil, clock_env(1792843200000)) -- 2026-10-24T12:00Z
    wf = deploy(srv, "berlin", '{ cron = "30 2 * * *", timezone = "Europe/Berlin" }')
    advance(srv, "2d")
    -- once on the 25th (the first 02:30, CEST), not again an hour later
    assert.are.same({ "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z" },
                    scheduled(srv, runs(srv, wf, 2)))
    assert.are.equal(0, srv.close())
  end)

  it("fires only inside its window, in its zone", function()
    local srv = serve(nil, clock_env(T0)) -- Monday 2026-06-01 02:00 in Berlin
    local wf = deploy(srv, "office", [[{ cron = "0 * * * *", timezone = "Europe/Berlin",
      window = { from = "09:00", to = "12:00", days = "MON-FRI", dates = { "2026-06-01" } } }]])
    local _, trig = srv.call("GET", "/api/workflows/" .. wf.id .. "/triggers")
    assert.are.equal("2026-06-01T07:00:00.000Z", trig.items[1].next_run_at)
    advance(srv, "3d")
    assert.are.same({ "2026-06-01T07:00:00.000Z", "2026-06-01T08:00:00.000Z",
                      "2026-06-01T09:00:00.000Z" }, scheduled(srv, runs(srv, wf, 3)))
    _, trig = srv.call("GET", "/api/workflows/" .. wf.id .. "/triggers")
    assert.is_nil(trig.items[1].next_run_at) -- null: its last date is past
    assert.are.equal(0, srv.close())
  end)

  it("catches up missed runs after a restart by each policy, without doubles", function()
    local srv = serve(nil, clock_env(T0))
    local data = srv.data
    local all = deploy(srv, "all", '{ cron = "* * * * *", missed = "run_all", max_catchup = 5 }')
    local once = deploy(srv, "once", '{ cron = "* * * * *", missed = "run_once" }')
    local skip = deploy(srv, "skip", '{ cron = "* * * * *" }')
    advance(srv, "2m")
    for _, wf in ipairs({ all, once, skip }) do
      assert.are.same({ "2026-06-01T00:01:00.000Z", "2026-06-01T00:02:00.000Z" },
                      scheduled(srv, runs(srv, wf, 2)))
    end
    assert.are.equal(0, srv.stop())
    -- down from 00:02 to 00:10:30: 00:03 .. 00:10 were missed
    srv = serve(data, clock_env(T0 + 10 * MIN + 30000))
    local got = scheduled(srv, runs(srv, all, 7))
    assert.are.equal(7, #got, json.encode(got))
    assert.are.equal("2026-06-01T00:06:00.000Z catchup", got[3]) -- the latest five
    assert.are.equal("2026-06-01T00:10:00.000Z catchup", got[7])
    got = scheduled(srv, runs(srv, once, 3))
    assert.are.same({ "2026-06-01T00:01:00.000Z", "2026-06-01T00:02:00.000Z",
                      "2026-06-01T00:10:00.000Z catchup" }, got)
    os.execute("sleep 0.3")
    assert.are.equal(2, #runs(srv, skip))
    advance(srv, "1m")
    for wf, n in pairs({ [all] = 8, [once] = 4, [skip] = 3 }) do
      local s = scheduled(srv, runs(srv, wf, n))
      assert.are.equal(n, #s)
      assert.are.equal("2026-06-01T00:11:00.000Z", s[#s])
    end
    assert.are.equal(0, srv.close())
  end)

  it("neither loses nor doubles a fire across a restart at the same time", function()
    local srv = serve(nil, clock_env(T0))
    local data = srv.data
    local wf = deploy(srv, "steady", '{ every = "1m", missed = "run_all" }')
    advance(srv, "3m")
    assert.are.equal(3, #runs(srv, wf, 3))
    srv.kill() -- no goodbye: what was committed is all there is
    srv = serve(data, clock_env(T0 + 3 * MIN))
    os.execute("sleep 0.3")
    assert.are.equal(3, #runs(srv, wf))
    local _, trig = srv.call("GET", "/api/workflows/" .. wf.id .. "/triggers")
    assert.are.equal("2026-06-01T00:04:00.000Z", trig.items[1].next_run_at)
    advance(srv, "1m")
    assert.are.same({ "2026-06-01T00:01:00.000Z", "2026-06-01T00:02:00.000Z",
                      "2026-06-01T00:03:00.000Z", "2026-06-01T00:04:00.000Z" },
                    scheduled(srv, runs(srv, wf, 4)))
    assert.are.equal(0, srv.close())
  end)

  it("keeps its place across a new version, and catches up after a pause", function()
    local srv = serve(nil, clock_env(T0))
    local wf = deploy(srv, "pausable", '{ cron = "*/5 * * * *", missed = "run_once" }')
    advance(srv, "5m")
    assert.are.equal(1, #runs(srv, wf, 1))
    local status = srv.call("PUT", "/api/workflows/" .. wf.id,
                            script("pausable", '{ cron = "*/5 * * * *", missed = "run_once" }',
                                   'wf:step("b", function(ctx) return 2 end)'), "text/x-lua")
    assert.are.equal(200, status)
    advance(srv, "5m")
    assert.are.equal(2, #runs(srv, wf, 2)) -- no catch-up: the new version went on from 00:05
    srv.call("POST", "/api/workflows/" .. wf.id .. "/pause")
    advance(srv, "20m")
    os.execute("sleep 0.2")
    assert.are.equal(2, #runs(srv, wf))
    srv.call("POST", "/api/workflows/" .. wf.id .. "/activate")
    local got = scheduled(srv, runs(srv, wf, 3))
    assert.are.same({ "2026-06-01T00:05:00.000Z", "2026-06-01T00:10:00.000Z",
                      "2026-06-01T00:30:00.000Z catchup" }, got)
    assert.are.equal(0, srv.close())
  end)

  it("holds overlap between catch-ups fired together", function()
    local srv = serve(nil, clock_env(T0))
    local data = srv.data
    local wf = deploy(srv, "catching", '{ cron = "* * * * *", missed = "run_all", overlap = "skip" }',
      'wf:step("slow", af.delay(function(ctx) return ctx.trigger.catchup and "10m" or "1ms" end))')
    advance(srv, "1m") -- 00:01 runs, and ends when the clock moves on
    assert.are.equal(1, #runs(srv, wf, 1))
    advance(srv, "1s")
    assert.are.equal("succeeded", h.wait_execution(srv, runs(srv, wf, 1)[1].id).status)
    assert.are.equal(0, srv.stop())
    srv = serve(data, clock_env(T0 + 6 * MIN + 1000)) -- 00:02 .. 00:06 were missed
    local got = runs(srv, wf, 2)
    os.execute("sleep 0.3")
    got = runs(srv, wf, 2)
    assert.are.equal(2, #got) -- the first catch-up runs; the four behind it are skipped
    assert.are.same({ "2026-06-01T00:01:00.000Z", "2026-06-01T00:02:00.000Z catchup" },
                    scheduled(srv, got))
    assert.are.equal(0, srv.close())
  end)

  it("skips, queues or allows a fire while the previous execution runs", function()
    local srv = serve(nil, clock_env(T0))
    local slow = 'wf:step("slow", af.delay "150s")'
    local allow = deploy(srv, "allow", '{ cron = "* * * * *" }', slow)
    local skip = deploy(srv, "skip", '{ cron = "* * * * *", overlap = "skip" }', slow)
    local queue = deploy(srv, "queue", '{ cron = "* * * * *", overlap = "queue" }', slow)
    advance(srv, "1m") -- 00:01: each starts one, which runs until 00:03:30
    runs(srv, allow, 1)
    runs(srv, skip, 1)
    runs(srv, queue, 1)
    advance(srv, "1m") -- 00:02
    advance(srv, "1m") -- 00:03
    assert.are.equal(3, #runs(srv, allow, 3))
    os.execute("sleep 0.2")
    assert.are.equal(1, #runs(srv, skip))
    assert.are.equal(1, #runs(srv, queue)) -- two fires wait
    advance(srv, "40s") -- 00:03:40: the first ended, the queued 00:02 starts
    local q = runs(srv, queue, 2)
    assert.are.equal(2, #q)
    local _, first = srv.call("GET", "/api/executions/" .. q[1].id)
    assert.are.equal("succeeded", first.status)
    advance(srv, "20s") -- 00:04: skip starts again, queue queues a third
    assert.are.equal(2, #runs(srv, skip, 2))
    advance(srv, "150s") -- 00:06:30: 00:02's run ended, 00:03's started
    q = runs(srv, queue, 3)
    assert.are.equal(3, #q)
    assert.are.same({ "2026-06-01T00:01:00.000Z", "2026-06-01T00:02:00.000Z",
                      "2026-06-01T00:03:00.000Z" }, scheduled(srv, q))
    assert.are.equal(0, srv.close())
  end)
end)
