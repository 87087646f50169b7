-- spec/helpers.lua -- what the busted specs share: running the agentflow binary and reading what
-- it printed, paths of examples and fixtures, temporary files, JSON. Loaded by busted's
-- --helper and by `local helpers = require "spec.helpers"` in a spec (it is the same table).
--
-- Run specs from the repository root:
--   AGENTFLOW_BIN=build/agentflow luajit /usr/bin/busted --helper=spec/helpers.lua spec/integration
if type(package.loaded["spec.helpers"]) == "table" then return package.loaded["spec.helpers"] end

local json = require "dkjson"

local helpers = {}
package.loaded["spec.helpers"] = helpers

--- The binary under test: $AGENTFLOW_BIN, else build/agentflow (relative to the repository).
helpers.BIN = os.getenv("AGENTFLOW_BIN") or "build/agentflow"
--- How long one command may take before it counts as hung (seconds).
helpers.TIMEOUT = tonumber(os.getenv("AGENTFLOW_SPEC_TIMEOUT") or "") or 60

-- ---------------------------------------------------------------------------------------------
-- paths

--- Joins path parts with "/".
function helpers.path(...)
  return (table.concat({ ... }, "/"):gsub("//+", "/"))
end
--- examples/NAME
function helpers.example(name) return helpers.path("examples", name) end
--- spec/integration/fixtures/NAME
function helpers.fixture(name) return helpers.path("spec/integration/fixtures", name) end

--- Quotes a string for /bin/sh.
function helpers.quote(s)
  s = tostring(s)
  if s:match("^[%w%._/=:@%-]+$") then return s end
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

--- The names in a directory matching a Lua pattern, sorted (via ls, so no lfs is needed).
function helpers.list(dir, pattern)
  local p = io.popen("ls -1 " .. helpers.quote(dir) .. " 2>/dev/null")
  local names = {}
  for name in p:lines() do
    if pattern == nil or name:match(pattern) then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

function helpers.exists(file)
  local f = io.open(file)
  if f then f:close() end
  return f ~= nil
end

function helpers.read(file)
  local f = assert(io.open(file, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text to a new temporary file and returns its name (remove it with os.remove).
function helpers.tmpfile(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(text or "")
  f:close()
  return name
end

-- ---------------------------------------------------------------------------------------------
-- JSON

--- Decodes JSON text; nil and a message when it is not JSON. Arrays and objects keep dkjson's
--- __jsontype metatable, so an empty [] and {} can be told apart (see helpers.json_type).
function helpers.decode(text)
  if text == nil then return nil, "no text" end
  local v, _, err = json.decode(text, 1, json.null)
  if err then return nil, err end
  return v
end
helpers.encode = json.encode
helpers.null = json.null
--- "array" or "object" for a decoded table (its dkjson __jsontype), else nil.
function helpers.json_type(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and mt.__jsontype or nil
end

-- ---------------------------------------------------------------------------------------------
-- running the binary

--- Runs a shell command; returns its exit status, stdout and stderr.
function helpers.sh(cmd)
  local errf = os.tmpname()
  -- LuaJIT's popen:close() gives no exit status: the shell prints it after the output
  local p = io.popen("{ " .. cmd .. "; } 2>" .. errf .. "; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local err = helpers.read(errf)
  os.remove(errf)
  local stdout, code = out:match("^(.-)__exit=(%d+)%s*$")
  return tonumber(code), stdout or out, err
end

--- Runs the binary: run({ "run", file, "--json" }, { NAME = "value", OTHER = false }).
--- args is a list (each quoted) or a string (passed to the shell as is). env sets variables
--- (false unsets one). Returns { code =, stdout =, stderr =, json = (stdout decoded, or nil),
--- cmd = }. code is the exit status; 124 when the command hung past helpers.TIMEOUT.
function helpers.run(args, env)
  local parts = {}
  if env and next(env) then
    parts[#parts + 1] = "env"
    local names = {}
    for k in pairs(env) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do -- env wants its options before the assignments
      if env[k] == false then parts[#parts + 1] = "-u " .. helpers.quote(k) end
    end
    for _, k in ipairs(names) do
      if env[k] ~= false then parts[#parts + 1] = helpers.quote(k .. "=" .. tostring(env[k])) end
    end
  end
  parts[#parts + 1] = "timeout -k 5 " .. helpers.TIMEOUT
  parts[#parts + 1] = helpers.quote(helpers.BIN)
  if type(args) == "table" then
    for _, a in ipairs(args) do parts[#parts + 1] = helpers.quote(a) end
  else
    parts[#parts + 1] = args
  end
  local cmd = table.concat(parts, " ")
  local code, stdout, stderr = helpers.sh(cmd)
  return { cmd = cmd, code = code, stdout = stdout, stderr = stderr,
           json = helpers.decode(stdout) }
end

--- Starts `agentflow serve` on a free loopback port with its data in `data` (a directory; a new
--- temporary one when nil). extra: more arguments (a string), env: a string of VAR=value words put
--- before the command. Returns a server { url =, data =, pid =, log =, call =, stop =, kill = }:
---   call(method, path, body, content_type, headers) -> status, decoded JSON body (or nil), raw
---     body, raw response headers; headers is a list of "Name: value" strings;
---   stop() sends SIGTERM and returns the exit status (nil if it did not exit in 5 s);
---   kill() sends SIGKILL and waits for the process to be gone;
---   close() stops it and removes its data directory.
function helpers.serve(data, extra, env)
  if not data then
    data = os.tmpname()
    os.remove(data)
  end
  local log = os.tmpname()
  os.remove(log .. ".code")
  -- a watcher shell records the server's exit status in LOG.code
  os.execute("(" .. (env and (env .. " ") or "") .. helpers.BIN ..
             " serve --listen 127.0.0.1:0 --data " .. data .. " " .. (extra or "") .. " 2> " ..
             log .. " & echo $! > " .. log .. ".pid; wait $!; echo $? > " .. log .. ".code) 2>/dev/null &")
  local port
  for _ = 1, 200 do
    port = helpers.exists(log) and helpers.read(log):match("listening on http://127%.0%.0%.1:(%d+)")
    if port then break end
    if helpers.exists(log .. ".code") then break end
    os.execute("sleep 0.05")
  end
  assert(port, "agentflow serve did not start: " .. (helpers.exists(log) and helpers.read(log) or ""))
  local pid
  for _ = 1, 50 do
    pid = helpers.exists(log .. ".pid") and helpers.read(log .. ".pid"):match("%d+")
    if pid then break end
    os.execute("sleep 0.05")
  end
  local srv = { url = "http://127.0.0.1:" .. port, data = data, pid = pid, log = log }
  function srv.call(method, path, body, ctype, headers)
    local file = body and helpers.tmpfile(body)
    local hdrs = os.tmpname()
    local cmd = "curl -s -D " .. hdrs .. " -o /dev/stdout -w '\\n%{http_code}' -X " .. method ..
      (ctype and (" -H " .. helpers.quote("Content-Type: " .. ctype)) or "")
    for _, hd in ipairs(headers or {}) do cmd = cmd .. " -H " .. helpers.quote(hd) end
    cmd = cmd .. (file and (" --data-binary @" .. file) or "") .. " " .. helpers.quote(srv.url .. path)
    local _, out = helpers.sh(cmd)
    if file then os.remove(file) end
    local raw_headers = helpers.read(hdrs) or ""
    os.remove(hdrs)
    local text, status = out:match("^(.*)\n(%d+)%s*$")
    return tonumber(status), json.decode(text or ""), text, raw_headers
  end
  local function wait_exit()
    local code
    for _ = 1, 100 do
      code = helpers.exists(log .. ".code") and tonumber(helpers.read(log .. ".code"):match("%d+"))
      if code then break end
      os.execute("sleep 0.05")
    end
    os.remove(log .. ".pid")
    os.remove(log .. ".code")
    return code
  end
  function srv.stop()
    helpers.sh("kill -TERM " .. srv.pid)
    return wait_exit()
  end
  function srv.kill()
    helpers.sh("kill -KILL " .. srv.pid)
    return wait_exit()
  end
  --- stop(), then the data directory goes; returns stop's exit status
  function srv.close()
    local code = srv.stop()
    helpers.sh("rm -rf " .. helpers.quote(srv.data))
    os.remove(log)
    return code
  end
  helpers.running[srv] = true
  for _, name in ipairs({ "stop", "kill" }) do
    local f = srv[name]
    srv[name] = function()
      helpers.running[srv] = nil
      return f()
    end
  end
  return srv
end

--- Servers started by helpers.serve and not stopped yet.
helpers.running = {}
--- Closes them: `after_each(h.close_servers)` stops what a failed test left running.
function helpers.close_servers()
  for srv in pairs(helpers.running) do srv.close() end
end

--- Stores a workflow script on srv (POST /api/workflows) and returns its record; fails the test
--- unless it is created.
function helpers.deploy(srv, src)
  local status, wf = srv.call("POST", "/api/workflows", src, "text/x-lua")
  assert(status == 201, "deploy: " .. tostring(status) .. " " .. json.encode(wf))
  return wf
end

--- A workflow script: `name`, one trigger (DSL text such as 'af.event { type = "x" }') and its
--- steps (Lua text; by default one step that returns ctx.trigger).
function helpers.workflow_src(name, trigger, steps)
  return ("local af = require \"agentflow\"\nlocal wf = af.workflow %q {}\nwf:on(%s)\n%s\nreturn wf\n")
    :format(name, trigger, steps or 'wf:step("a", function(ctx) return ctx.trigger end)')
end

--- The executions of workflow wf on srv as full records, oldest first (time-ordered ids break
--- ties), once at least n of them are there — n that have ended when `ended` — or after 5 s.
function helpers.executions(srv, wf, n, ended)
  local items
  helpers.wait_until(function()
    local _, list = srv.call("GET", "/api/executions?limit=200&workflow_id=" .. wf.id)
    items = {}
    for _, x in ipairs(list.items) do
      local _, full = srv.call("GET", "/api/executions/" .. x.id)
      local over = full.status == "succeeded" or full.status == "failed"
      if not ended or over then items[#items + 1] = full end
    end
    return #items >= (n or 0)
  end, 5)
  table.sort(items, function(a, b)
    return a.created_at < b.created_at or (a.created_at == b.created_at and a.id < b.id)
  end)
  return items
end

--- The env words that start a server on a manual clock at epoch ms `at` (see helpers.serve).
function helpers.manual_clock(at) return "AGENTFLOW_CLOCK=manual@" .. string.format("%d", at) end

--- Moves srv's manual clock forward by `what` (a duration: "90s") and returns {now, now_ms}.
function helpers.advance(srv, what)
  local status, body = srv.call("POST", "/api/clock", json.encode({ advance = what }),
                                "application/json")
  assert(status == 200, "advance: " .. tostring(status) .. " " .. json.encode(body))
  return body
end

--- Calls pred() every 50 ms until it returns a true value (returned), at most `seconds` (10).
function helpers.wait_until(pred, seconds)
  local v
  for _ = 1, (seconds or 10) * 20 do
    v = pred()
    if v then return v end
    os.execute("sleep 0.05")
  end
  return v
end

--- Polls GET /api/executions/ID on srv until its status is one of `statuses` (a set; default the
--- ends: succeeded, failed, cancelled), at most `seconds` (default 10). Returns the last record.
function helpers.wait_execution(srv, id, statuses, seconds)
  statuses = statuses or { succeeded = true, failed = true, cancelled = true }
  local got
  for _ = 1, (seconds or 10) * 20 do
    local _, x = srv.call("GET", "/api/executions/" .. id)
    got = x
    if x and statuses[x.status] then return x end
    os.execute("sleep 0.05")
  end
  return got
end

--- Starts spec/tools' af-mockserver (built next to the binary) on a free loopback port.
--- Returns { port =, url = "http://127.0.0.1:PORT", stop = function }.
function helpers.mock_server()
  local dir = helpers.BIN:match("^(.*)/[^/]+$") or "."
  local bin = dir .. "/spec/tools/af-mockserver"
  local out = os.tmpname()
  os.execute(bin .. " > " .. out .. " 2>/dev/null & echo $! > " .. out .. ".pid")
  local port
  for _ = 1, 100 do
    local f = io.open(out)
    local line = f and f:read("*l")
    if f then f:close() end
    port = line and line:match("port=(%d+)")
    if port then break end
    os.execute("sleep 0.05")
  end
  assert(port, "af-mockserver did not start (" .. bin .. ")")
  local pf = io.open(out .. ".pid")
  local pid = pf:read("*l")
  pf:close()
  return {
    port = tonumber(port),
    url = "http://127.0.0.1:" .. port,
    stop = function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(out)
      os.remove(out .. ".pid")
    end,
  }
end

--- A one-line description of a run, for assertion messages.
function helpers.describe_run(r)
  local function cut(s)
    s = s or ""
    return #s > 4000 and s:sub(1, 4000) .. "..." or s
  end
  return string.format("%s\nexit %s\n--- stdout\n%s\n--- stderr\n%s", r.cmd, tostring(r.code),
                       cut(r.stdout), cut(r.stderr))
end

return helpers
