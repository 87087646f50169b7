-- A plugin's trigger type run by `agentflow serve`: af.trigger "fixture.ticks" (the test plugin
-- spec/plugins/good.c) starts with its config, each fire starts an execution (through the
-- trigger's input function), it stops when the workflow is paused, and an unknown type is a
-- definition error.
local h = require "spec.helpers"
local json = require "dkjson"

local function plugin_dir()
  local dir = os.tmpname()
  os.remove(dir)
  local build = h.BIN:match("^(.*)/[^/]+$") or "."
  h.sh("mkdir -p " .. dir .. " && cp " .. build .. "/spec/plugins/fixture-good.so " .. dir)
  return dir
end

local SCRIPT = [[
local af = require "agentflow"
local wf = af.workflow "ticking" {}
wf:on(af.trigger "fixture.ticks" { count = 3, input = function(x) return { n = x.tick * 10 } end })
wf:step("a", function(ctx) return ctx.trigger.n end)
return wf
]]

describe("agentflow serve plugin triggers", function()
  after_each(h.close_servers)

  it("starts a plugin's trigger type and runs an execution per fire", function()
    local dir = plugin_dir()
    local srv = h.serve(nil, "--plugins " .. dir)
    local wf = h.deploy(srv, SCRIPT)
    local function results()
      local _, list = srv.call("GET", "/api/executions?limit=200&workflow_id=" .. wf.id)
      local out = {}
      for _, x in ipairs(list.items) do
        local _, full = srv.call("GET", "/api/executions/" .. x.id)
        if full.status == "succeeded" then out[#out + 1] = full.result.a end
      end
      table.sort(out)
      return out
    end
    local function count()
      local _, list = srv.call("GET", "/api/executions?limit=200&workflow_id=" .. wf.id)
      return #list.items
    end
    h.wait_until(function() return #results() == 3 end)
    assert.are.same({ 10, 20, 30 }, results())
    local _, trig = srv.call("GET", "/api/workflows/" .. wf.id .. "/triggers")
    assert.are.equal("plugin", trig.items[1].type)
    assert.are.equal("fixture.ticks", trig.items[1].config.type)
    assert.are.equal(3, trig.items[1].config.config.count)
    -- a new version starts it again: three more fires
    local status = srv.call("PUT", "/api/workflows/" .. wf.id, SCRIPT, "text/x-lua")
    assert.are.equal(200, status)
    h.wait_until(function() return #results() == 6 end)
    assert.are.same({ 10, 10, 20, 20, 30, 30 }, results())
    -- one that would fire for a long time stops when the workflow is paused
    status = srv.call("PUT", "/api/workflows/" .. wf.id, SCRIPT:gsub("count = 3", "count = 100000"),
                      "text/x-lua")
    assert.are.equal(200, status)
    h.wait_until(function() return count() > 20 end)
    assert.are.equal(200, (srv.call("POST", "/api/workflows/" .. wf.id .. "/pause")))
    local paused = count()
    os.execute("sleep 0.3") -- it fired every millisecond: 300 fires had it gone on
    -- (writes in flight at the pause may still land: a few, not hundreds)
    assert.is_true(count() <= paused + 20, "fires after the pause: " .. (count() - paused))
    assert.are.equal(0, srv.close())
    h.sh("rm -rf " .. dir)
  end)

  it("refuses a trigger type that is not loaded", function()
    local srv = h.serve()
    local wf = h.deploy(srv, [[
local af = require "agentflow"
local wf = af.workflow "plain" {}
wf:step("a", function() return 1 end)
return wf
]])
    for _, cfg in ipairs({ { type = "nope.never" }, { config = { count = 1 } } }) do
      local st, b = srv.call("POST", "/api/workflows/" .. wf.id .. "/triggers",
                             json.encode({ type = "plugin", config = cfg }), "application/json")
      assert.are.equal(422, st, json.encode(b))
      assert.truthy(b.error.message:find("is loaded", 1, true), b.error.message)
    end
    local status, body = srv.call("POST", "/api/workflows",
                                  SCRIPT:gsub("fixture%.ticks", "nope.never"), "text/x-lua")
    assert.are.equal(422, status)
    assert.truthy(body.error.message:find("no trigger type 'nope.never' is loaded", 1, true),
                  body.error.message)
    assert.are.equal(0, srv.close())
  end)
end)
