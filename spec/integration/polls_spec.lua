-- Polling triggers of `agentflow serve` for real: a local HTTP feed (af-mockserver) polled on a
-- manual clock; change detection by key, content hash or whole content, baseline or not, items
-- picked by a Lua function, state kept across a restart, failures backed off and recovered,
-- limits per workflow and per target host, and what a bad poll definition gets.
local h = require "spec.helpers"
local json = require "dkjson"

local T0 = 1780272000000 -- 2026-06-01T00:00:00Z

local function script(name, poll) return h.workflow_src(name, "af.poll " .. poll) end
local function deploy(srv, name, poll) return h.deploy(srv, script(name, poll)) end
local advance = h.advance

local function set_feed(mock, name, body, status)
  local f = h.tmpfile(json.encode(body))
  h.sh("curl -s -X PUT -H 'Content-Type: application/json' --data-binary @" .. f .. " " ..
       h.quote(mock.url .. "/feed/" .. name .. (status and ("?status=" .. status) or "")))
  os.remove(f)
end

local function feed_count(mock, name)
  local _, out = h.sh("curl -s " .. h.quote(mock.url .. "/feed-count/" .. name))
  return json.decode(out).count
end

-- The inputs of a workflow's executions, oldest first, once n are there.
local function inputs(srv, wf, n)
  local out = {}
  for i, x in ipairs(h.executions(srv, wf, n)) do out[i] = x.input end
  return out
end

-- Waits until the feed was asked `n` times.
local function polled(mock, name, n)
  return h.wait_until(function() return feed_count(mock, name) >= n end, 5) == true
end

local function settle() os.execute("sleep 0.25") end

describe("agentflow serve polls", function()
  local mock
  before_each(function() mock = h.mock_server() end)
  after_each(function()
    h.close_servers()
    mock.stop()
  end)

  it("starts one execution per new or changed item, by key and hash", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0))
    set_feed(mock, "k", { { id = 1, v = "a" }, { id = 2, v = "b" } })
    local keyed = deploy(srv, "keyed", ('{ interval = "1m", key = "id", hash = true, ' ..
                                        'request = { url = "%s/feed/k" } }'):format(mock.url))
    assert.is_true(polled(mock, "k", 1))
    settle()
    assert.are.equal(0, #inputs(srv, keyed)) -- the first poll is the baseline
    set_feed(mock, "k", { { id = 1, v = "a" }, { id = 2, v = "B" }, { id = 3, v = "c" } })
    advance(srv, "1m")
    local got = inputs(srv, keyed, 2)
    assert.are.same({ { id = 2, v = "B" }, { id = 3, v = "c" } }, got)
    advance(srv, "1m") -- nothing new
    assert.is_true(polled(mock, "k", 3))
    settle()
    assert.are.equal(2, #inputs(srv, keyed))
    assert.are.equal(0, srv.close())
  end)

  it("emits everything at first without a baseline, picks items with fn, keys by content", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0))
    set_feed(mock, "w", { data = { { n = "x" }, { n = "y" } }, total = 2 })
    local wf = deploy(srv, "wrapped", ([[{ interval = "30s", baseline = false,
      request = { url = "%s/feed/w", headers = { Accept = "application/json" } },
      fn = function(res) assert(res.status == 200) return res.body.data end,
      input = function(item) return { name = item.n } end }]]):format(mock.url))
    assert.are.same({ { name = "x" }, { name = "y" } }, inputs(srv, wf, 2))
    set_feed(mock, "w", { data = { { n = "y" }, { n = "z" } } })
    advance(srv, "30s")
    local got = inputs(srv, wf, 3)
    assert.are.equal(3, #got)
    assert.are.same({ name = "z" }, got[3]) -- y is known by its content
    assert.are.equal(0, srv.close())
  end)

  it("polls through a plugin's node type (http.request) whose output holds the items", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0))
    set_feed(mock, "n", { items = { { sku = "a-1" } } })
    local wf = deploy(srv, "by-node", ([[{ interval = "10m", key = "sku", baseline = false,
      node = "http.request", config = { url = "%s/feed/n", headers = { ["X-Poll"] = "yes" } },
      fn = function(out) return out.body.items end }]]):format(mock.url))
    assert.are.same({ { sku = "a-1" } }, inputs(srv, wf, 1))
    set_feed(mock, "n", { items = { { sku = "a-1" }, { sku = "b-2" } } })
    advance(srv, "10m")
    local got = inputs(srv, wf, 2)
    assert.are.same({ sku = "b-2" }, got[2])
    -- a failing node call is a failed poll (the plugin's fault in the log), then recovered
    set_feed(mock, "n", { error = "nope" }, 500)
    advance(srv, "10m")
    assert.is_true(polled(mock, "n", 3))
    settle()
    assert.truthy(h.read(srv.log):find("failed (1 in a row): http.request: HTTP_500", 1, true),
                  h.read(srv.log))
    set_feed(mock, "n", { items = { { sku = "a-1" }, { sku = "b-2" }, { sku = "c-3" } } })
    advance(srv, "1s") -- the retry after the failure
    got = inputs(srv, wf, 3)
    assert.are.same({ sku = "c-3" }, got[3])
    assert.are.equal(0, srv.close())
  end)

  it("polls a Lua function on its interval plus jitter", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0))
    local wf = deploy(srv, "lua-fn", [[{ interval = "1m", jitter = "30s", baseline = false,
      fn = function(p) return { { at = p.last_poll_at or "first" } } end }]])
    settle()
    assert.are.equal(0, #inputs(srv, wf)) -- the first poll waits its jitter (the clock stands still)
    advance(srv, "30s")
    local got = inputs(srv, wf, 1)
    assert.are.same({ { at = "first" } }, got)
    advance(srv, "29s") -- a minute after the first poll at the earliest: not yet
    settle()
    assert.are.equal(1, #inputs(srv, wf))
    advance(srv, "61s") -- 2 min: the second poll (1 min + at most 30 s after the first) is done
    got = inputs(srv, wf, 2)
    assert.are.equal(2, #got)
    assert.truthy(got[2].at:match("^2026%-06%-01T00:00:[0-3]"), got[2].at) -- the first poll's time
    assert.are.equal(0, srv.close())
  end)

  it("keeps what it saw across a new version of its workflow", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0))
    set_feed(mock, "v", { { id = 1 }, { id = 2 } })
    local poll = ('{ interval = "1m", key = "id", request = { url = "%s/feed/v" } }'):format(mock.url)
    local wf = deploy(srv, "versioned", poll)
    assert.is_true(polled(mock, "v", 1))
    settle()
    local status = srv.call("PUT", "/api/workflows/" .. wf.id, script("versioned", poll),
                            "text/x-lua")
    assert.are.equal(200, status)
    set_feed(mock, "v", { { id = 1 }, { id = 2 }, { id = 3 } })
    advance(srv, "1m")
    assert.is_true(polled(mock, "v", 2))
    local got = inputs(srv, wf, 1)
    settle()
    got = inputs(srv, wf, 1)
    assert.are.same({ { id = 3 } }, got) -- 1 and 2 were known before the new version
    assert.are.equal(0, srv.close())
  end)

  it("keeps what it saw across a restart", function()
    local env = h.manual_clock(T0)
    local srv = h.serve(nil, nil, env)
    local data = srv.data
    set_feed(mock, "r", { { id = "a" } })
    local wf = deploy(srv, "restart", ('{ interval = "1m", key = "id", request = { url = "%s/feed/r" } }')
                                       :format(mock.url))
    assert.is_true(polled(mock, "r", 1))
    set_feed(mock, "r", { { id = "a" }, { id = "b" } })
    advance(srv, "1m")
    assert.are.equal(1, #inputs(srv, wf, 1))
    assert.are.equal(0, srv.stop())
    srv = h.serve(data, nil, h.manual_clock(T0 + 90000))
    set_feed(mock, "r", { { id = "a" }, { id = "b" }, { id = "c" } })
    advance(srv, "1m")
    local got = inputs(srv, wf, 2)
    settle()
    got = inputs(srv, wf, 2)
    assert.are.same({ { id = "b" }, { id = "c" } }, got)
    assert.are.equal(0, srv.close())
  end)

  it("logs a failing poll, backs off, and recovers", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0))
    set_feed(mock, "f", { error = "down" }, 503)
    local wf = deploy(srv, "flaky", ('{ interval = "1h", key = "id", baseline = false, ' ..
                                     'request = { url = "%s/feed/f" } }'):format(mock.url))
    assert.is_true(polled(mock, "f", 1))
    advance(srv, "1s") -- first retry after 1 s, then 2 s, 4 s
    assert.is_true(polled(mock, "f", 2))
    advance(srv, "1s")
    settle()
    assert.are.equal(2, feed_count(mock, "f")) -- backing off: not yet
    advance(srv, "1s")
    assert.is_true(polled(mock, "f", 3))
    local log = h.read(srv.log)
    assert.truthy(log:find("of workflow " .. wf.id .. " failed (2 in a row): " .. mock.url ..
                           "/feed/f: HTTP 503; next try in 2000 ms", 1, true), log)
    set_feed(mock, "f", { { id = 1 } })
    advance(srv, "4s")
    assert.are.same({ { id = 1 } }, inputs(srv, wf, 1))
    assert.are.equal(0, srv.close())
  end)

  it("holds polls to the limits per workflow and per target host", function()
    local srv = h.serve(nil, nil, h.manual_clock(T0) ..
                        " AGENTFLOW_POLLS_MAX_PER_HOST=3 AGENTFLOW_POLLS_HOST_PERIOD=1h")
    set_feed(mock, "a", {})
    set_feed(mock, "b", {})
    deploy(srv, "one", ('{ interval = "1m", request = { url = "%s/feed/a" } }'):format(mock.url))
    deploy(srv, "two", ('{ interval = "1m", max_per = { polls = 1, period = "10m" }, ' ..
                        'request = { url = "%s/feed/b" } }'):format(mock.url))
    assert.is_true(polled(mock, "a", 1) and polled(mock, "b", 1))
    for _ = 1, 6 do
      advance(srv, "1m")
      os.execute("sleep 0.05")
    end
    assert.is_true(polled(mock, "a", 2))
    settle() -- no poll beyond the limits comes later
    -- the host allowed three polls in the hour, the second workflow one in ten minutes
    assert.are.equal(1, feed_count(mock, "b"))
    assert.are.equal(2, feed_count(mock, "a"))
    advance(srv, "1h")
    assert.is_true(polled(mock, "b", 2))
    assert.are.equal(0, srv.close())
  end)

  it("refuses poll definitions it cannot run", function()
    local srv = h.serve()
    for _, c in ipairs({
      { '{ interval = "100ms", fn = function() return {} end }', "at least 1s" },
      { '{ interval = "1m", request = { method = "GET" } }', "'request' is a table with a 'url'" },
      { '{ interval = "1m" }', "'request'" },
      { '{ interval = "1m", fn = function() end, max_per = { polls = 0 } }', "max_per" },
      { '{ interval = "soon", fn = function() end }', "interval" },
      { '{ interval = "1m", node = "no.such.type" }', "unknown node type 'no.such.type'" },
      { '{ interval = "1m", node = "lua" }', "runs inside executions only" },
      { '{ interval = "1m", node = "http.request", config = { method = "GET" } }', "url" },
      { '{ interval = "1m", node = "http.request", request = { url = "x" } }', "give one" },
    }) do
      local status, body = srv.call("POST", "/api/workflows", script("bad", c[1]), "text/x-lua")
      assert.are.equal(422, status, c[1])
      assert.truthy(body.error.message:find(c[2], 1, true), body.error.message)
    end
    assert.are.equal(0, srv.close())
  end)
end)
