-- The rest of the REST API against a real `agentflow serve`: versions, execution lists with
-- filters and cursors, bulk execution (JSON and NDJSON), dead letters, the OpenAPI description,
-- configuration by file and environment, retention, and bad requests of every kind.
local h = require "spec.helpers"
local json = require "dkjson"

local SCRIPT = [[
local af = require "agentflow"
local wf = af.workflow "api-test" { description = "v1" }
wf:step("double", function(ctx) return (ctx.trigger.x or 0) * 2 end)
return wf
]]

local wait_done = h.wait_execution

describe("agentflow serve API", function()
  local srv
  after_each(function()
    if srv then srv.close() end
    srv = nil
  end)

  it("lists versions and executions, filtered and paginated", function()
    srv = h.serve()
    local _, w = srv.call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    srv.call("PUT", "/api/workflows/" .. w.id, SCRIPT:gsub('"v1"', '"v2"'), "text/x-lua")
    local _, versions = srv.call("GET", "/api/workflows/" .. w.id .. "/versions")
    assert.are.equal(2, #versions.items)
    assert.are.equal(2, versions.items[1].version)
    assert.truthy(versions.items[2].source:find('"v1"', 1, true))
    assert.are.equal(404, (srv.call("GET", "/api/workflows/00000000-0000-4000-8000-000000000000/versions")))
    local status, bulk = srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                                  '{"x": 1}\n\n{"x": 2}\n{"x": 3}\n', "application/x-ndjson")
    assert.are.equal(202, status)
    assert.are.equal(3, bulk.count)
    for _, id in ipairs(bulk.ids) do assert.are.equal("succeeded", wait_done(srv, id).status) end
    local seen, cursor, pages = {}, nil, 0
    repeat
      local _, page = srv.call("GET", "/api/executions?limit=2&status=succeeded&workflow_id=" .. w.id ..
                                      (cursor and ("&cursor=" .. cursor) or ""))
      for _, x in ipairs(page.items) do seen[#seen + 1] = x.id end
      cursor = page.next_cursor ~= json.null and page.next_cursor or nil
      pages = pages + 1
    until not cursor
    assert.are.equal(3, #seen)
    assert.are.equal(2, pages)
    local _, none = srv.call("GET", "/api/executions?status=failed&workflow_id=" .. w.id)
    assert.are.equal(0, #none.items)
    assert.are.equal(400, (srv.call("GET", "/api/executions?status=sleeping")))
    assert.are.equal(400, (srv.call("GET", "/api/executions?cursor=garbage")))
    assert.are.equal(400, (srv.call("GET", "/api/executions?limit=0")))
    local _, by_name = srv.call("GET", "/api/workflows?name=api-test")
    assert.are.equal(w.id, by_name.items[1].id)
  end)

  it("refuses a bad bulk request whole, naming the line", function()
    srv = h.serve()
    local _, w = srv.call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    local status, out = srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                                 '{"x": 1}\n{"x": \n', "application/x-ndjson")
    assert.are.equal(400, status)
    assert.truthy(out.error.message:find("line 2", 1, true), out.error.message)
    assert.are.equal(422, (srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                                    '{"inputs": 5}', "application/json")))
    assert.are.equal(422, (srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                                    '{"inputs": []}', "application/json")))
    local _, list = srv.call("GET", "/api/executions?workflow_id=" .. w.id)
    assert.are.equal(0, #list.items) -- nothing was enqueued
  end)

  it("dead-letters an execution whose workflow version cannot load, and retries it", function()
    srv = h.serve()
    local _, w = srv.call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    local _, ok = srv.call("POST", "/api/workflows/" .. w.id .. "/execute?wait=5")
    assert.are.equal("succeeded", ok.status) -- the version's script file now exists
    local file = srv.data .. "/versions/" .. w.id .. "-v1.lua"
    local good = h.read(file)
    srv.stop()
    local f = io.open(file, "w")
    f:write("return (") -- broken on disk while the server was down
    f:close()
    srv = h.serve(srv.data)
    local status, x = srv.call("POST", "/api/workflows/" .. w.id .. "/execute?wait=5",
                               '{"input": {"x": 21}}', "application/json")
    assert.are.equal(200, status)
    assert.are.equal("failed", x.status)
    local _, dead = srv.call("GET", "/api/dead-letters")
    assert.are.equal(1, #dead.items)
    assert.are.equal(x.id, dead.items[1].execution_id)
    assert.truthy(dead.items[1].last_error:find("unexpected symbol", 1, true), dead.items[1].last_error)
    f = io.open(file, "w")
    f:write(good)
    f:close()
    assert.are.equal(202, (srv.call("POST", "/api/executions/" .. x.id .. "/retry")))
    local again = wait_done(srv, x.id)
    assert.are.equal("succeeded", again.status)
    assert.are.equal(42, again.result.double)
    local _, after = srv.call("GET", "/api/dead-letters")
    assert.are.equal(0, #after.items)
  end)

  it("serves its OpenAPI description", function()
    srv = h.serve()
    local status, doc = srv.call("GET", "/api/openapi.json")
    assert.are.equal(200, status)
    assert.are.equal("3.1.0", doc.openapi)
    assert.truthy(doc.paths["/api/workflows/{id}/execute"])
    assert.truthy(doc.paths["/webhooks/{path}"])
  end)

  it("answers bad requests with the right status and changes nothing", function()
    srv = h.serve(nil, "", "AGENTFLOW_HTTP_READ_TIMEOUT=1s AGENTFLOW_HTTP_MAX_BODY=64KB")
    local _, w = srv.call("POST", "/api/workflows", SCRIPT, "text/x-lua")
    local base = "/api/workflows/" .. w.id
    assert.are.equal(415, (srv.call("POST", base .. "/execute", "x=1", "text/plain")))
    assert.are.equal(400, (srv.call("POST", base .. "/execute", "{", "application/json")))
    assert.are.equal(422, (srv.call("POST", base .. "/execute", "[1]", "application/json")))
    assert.are.equal(400, (srv.call("POST", base .. "/execute?wait=soon")))
    assert.are.equal(413, (srv.call("POST", base .. "/execute", string.rep("x", 70000), "application/json")))
    assert.are.equal(405, (srv.call("PATCH", base)))
    assert.are.equal(404, (srv.call("GET", "/api/nothing-here")))
    local _, list = srv.call("GET", "/api/executions?workflow_id=" .. w.id)
    assert.are.equal(0, #list.items)
    -- a slow-loris client that never finishes its headers is cut off
    local port = srv.url:match(":(%d+)$")
    local t0 = os.time()
    local _, out = h.sh("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "; " ..
                        "printf \"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\" >&3; cat <&3' 2>&1 || true")
    assert.truthy(out:find("HTTP/1.1 408", 1, true), out)
    assert.truthy(os.time() - t0 < 5)
  end)

  it("takes settings from a config file and the environment, flags winning", function()
    local conf = h.tmpfile('listen = "127.0.0.1:1"\n[worker]\nconcurrency = 7\n[retention]\nmax_count = 5\n')
    local r = h.run("serve --config " .. conf .. " --listen 127.0.0.1:0 --print-config",
                    { AGENTFLOW_WORKER_LEASE = "45s" })
    assert.are.equal(0, r.code, r.stderr)
    local cfg = r.json
    assert.are.equal("127.0.0.1:0", cfg.listen.value) -- the flag wins over the file
    assert.truthy(cfg.listen.source:find("flag", 1, true), cfg.listen.source)
    assert.are.equal(7, cfg.worker.concurrency.value) -- from the file
    assert.truthy(cfg.worker.concurrency.source:find(conf, 1, true), cfg.worker.concurrency.source)
    assert.are.equal("45s", cfg.worker.lease.value) -- from the environment
    assert.are.equal("env AGENTFLOW_WORKER_LEASE", cfg.worker.lease.source)
    assert.are.equal(5, cfg.retention.max_count.value)
    local bad = h.tmpfile('[worker]\nlease = "soon"\n')
    r = h.run("serve --config " .. bad)
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find(":2", 1, true) and r.stderr:find("worker.lease", 1, true), r.stderr)
    os.remove(conf)
    os.remove(bad)
  end)

  it("keeps the write-ahead log bounded while writes never pause", function()
    srv = h.serve()
    -- eight at a time: a steady stream of small group commits, never a pause
    local _, w = srv.call("POST", "/api/workflows", [[
local af = require "agentflow"
local wf = af.workflow "heavy" { concurrency = 8 }
local a = wf:step("a", function(ctx) return string.rep("a", 20000) .. ctx.trigger.x end)
local b = wf:step("b", function(ctx) return string.rep("b", 20000) end, { after = a })
wf:step("c", function(ctx) return string.rep("c", 20000) end, { after = b })
return wf
]], "text/x-lua")
    local inputs = {}
    for i = 1, 1200 do inputs[i] = { x = i } end
    local _, bulk = srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                             json.encode({ inputs = inputs }), "application/json")
    assert.are.equal(1200, #bulk.ids)
    local stats
    for _ = 1, 600 do
      _, stats = srv.call("GET", "/api/workflows/" .. w.id .. "/stats")
      if stats.executions.succeeded == 1200 then break end
      os.execute("sleep 0.05")
    end
    assert.are.equal(1200, stats.executions.succeeded)
    -- over 70 MB went through the log (all of it stayed in the log when only background
    -- checkpoints ran); it is reused from its start once checkpointed, so its file is as large
    -- as the most it ever held: the writer's checkpoint threshold (16 MB) plus a transaction
    local _, size = h.sh("stat -c %s " .. srv.data .. "/agentflow.db-wal")
    assert.truthy(tonumber(size) < 24 * 1024 * 1024, "log of " .. size .. " bytes")
  end)

  it("prunes finished executions by count, so the database stays bounded", function()
    srv = h.serve(nil, "", "AGENTFLOW_RETENTION_MAX_COUNT=20 AGENTFLOW_RETENTION_INTERVAL=300ms")
    local _, w = srv.call("POST", "/api/workflows", SCRIPT:gsub("return %(ctx.trigger.x or 0%) %* 2",
                                                                'return string.rep("y", 20000)'),
                          "text/x-lua")
    local sizes = {}
    for round = 1, 4 do
      local inputs = {}
      for i = 1, 100 do inputs[i] = { x = i } end
      local _, bulk = srv.call("POST", "/api/workflows/" .. w.id .. "/execute/bulk",
                               json.encode({ inputs = inputs }), "application/json")
      wait_done(srv, bulk.ids[#bulk.ids])
      os.execute("sleep 0.8")
      local _, list = srv.call("GET", "/api/executions?limit=200&workflow_id=" .. w.id)
      assert.truthy(#list.items <= 20 + 5, "kept " .. #list.items)
      local _, size = h.sh("stat -c %s " .. srv.data .. "/agentflow.db")
      sizes[round] = tonumber(size)
    end
    -- 400 executions of 20 KB each were written; the file holds about 20 of them
    assert.truthy(sizes[4] < 4 * 1024 * 1024, "database of " .. sizes[4] .. " bytes")
    assert.truthy(sizes[4] <= sizes[2] * 1.5, table.concat(sizes, " "))
  end)
end)
