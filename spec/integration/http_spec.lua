-- The http plugin against a real HTTP server on loopback (spec/tools/af-mockserver): as a step
-- kind and from Lua code, bodies, auth from secrets, retries with Retry-After, timeouts,
-- redirects, size limits, bad responses, the circuit breaker and config validation.
local h = require "spec.helpers"

local server

local function workflow(body)
  return h.tmpfile("local af = require 'agentflow'\nlocal URL = '" .. server.url .. "'\n" ..
                   "local wf = af.workflow 'http-spec' {}\n" .. body .. "\nreturn wf\n")
end

local function run(body, env, args)
  local file = workflow(body)
  local cmd = { "run", file, "--json" }
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = a end
  local r = h.run(cmd, env)
  os.remove(file)
  return r
end

local function step(r, name) return r.json and r.json.steps[name] or {} end

describe("the http plugin", function()
  setup(function() server = h.mock_server() end)
  teardown(function() server.stop() end)

  it("sends method, query, headers and JSON, form and raw bodies", function()
    local r = run([[
      wf:step("get", af.http.get { url = URL .. "/echo", query = { q = "a b", n = 2 },
                                   headers = { ["X-Trace"] = "t1" } })
      wf:step("json", af.http.post { url = URL .. "/echo", json = { list = af.array { 1, 2 } } })
      wf:step("form", af.http.post { url = URL .. "/echo", form = { a = "1&2" } })
      wf:step("raw", af.http.request { method = "PUT", url = URL .. "/echo", body = "plain",
                                       headers = { ["Content-Type"] = "text/plain" } })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    local get = step(r, "get").output.body
    assert.are.equal("GET", get.method)
    assert.truthy(get.query:find("q=a%20b", 1, true), get.query)
    assert.are.equal("t1", get.headers["x-trace"])
    local json = step(r, "json").output.body
    assert.are.equal('{"list":[1,2]}', json.body)
    assert.are.equal("application/json", json.headers["content-type"])
    assert.are.equal("a=1%262", step(r, "form").output.body.body)
    assert.are.equal("PUT", step(r, "raw").output.body.method)
    assert.are.equal("plain", step(r, "raw").output.body.body)
  end)

  it("takes auth from secrets and never shows them", function()
    local r = run([[
      wf:step("bearer", af.http.get { url = URL .. "/echo", auth = { bearer = af.secret "TOKEN" } })
      wf:step("basic", af.http.get { url = URL .. "/echo",
                                     auth = { basic = { user = "ann", password = af.secret "PW" } } })
    ]], { TOKEN = "tok-98765", PW = "pw-5555" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("Bearer ***", step(r, "bearer").output.body.headers.authorization)
    assert.truthy(step(r, "basic").output.body.headers.authorization:match("^Basic "))
    assert.falsy(r.stdout:find("tok-98765", 1, true))
    assert.falsy(r.stderr:find("tok-98765", 1, true))
  end)

  it("runs from Lua code, waiting without blocking other steps", function()
    local r = run([[
      wf:step("both", af.parallel {
        a = function() return af.http.get(URL .. "/delay/300").body.delayed_ms end,
        b = function() return af.http.get(URL .. "/delay/300", { timeout = "5s" }).status end,
      })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.same({ a = 300, b = 200 }, step(r, "both").output)
    -- one after the other they could not take less than 600 ms: they overlapped
    assert.is_true(step(r, "both").duration_ms < 600, tostring(step(r, "both").duration_ms))
  end)

  it("retries 5xx and honours Retry-After on 429", function()
    local r = run([[
      wf:step("flaky", af.http.get { url = URL .. "/flaky/spec-a/2" },
              { retry = { attempts = 3, initial = "5ms" } })
      wf:step("limited", af.http.get { url = URL .. "/retry-after/1" },
              { retry = { attempts = 2, initial = "1ms" }, on_error = "continue" })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(3, step(r, "flaky").attempts)
    assert.are.equal(3, step(r, "flaky").output.body.attempts)
    assert.are.equal("HTTP_429", step(r, "limited").error.code)
    assert.truthy(r.stderr:find("retrying in 1.00s", 1, true), r.stderr)
  end)

  it("honours Retry-After from Lua code too, and refuses bad headers without retrying", function()
    local r = run([[
      wf:step("code", function() return af.http.get(URL .. "/retry-after/1").status end,
              { retry = { attempts = 2, initial = "1ms" }, on_error = "continue" })
      wf:step("crlf", af.http.get { url = URL .. "/echo", timeout = "1h",
                                    headers = { ["X-Bad"] = "a\r\nInjected: 1" } },
              { retry = { attempts = 3, initial = "1ms" }, on_error = "continue" })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("code%s+attempt 1.-retrying in 1%.00s"), r.stderr)
    assert.are.equal("HTTP_CONFIG", step(r, "crlf").error.code)
    assert.are.equal(1, step(r, "crlf").attempts)
  end)

  it("fails 4xx without retrying, unless told not to fail on status", function()
    local r = run([[
      wf:step("missing", af.http.get { url = URL .. "/status/404" },
              { retry = { attempts = 3, initial = "1ms" }, on_error = "continue" })
      wf:step("tolerant", af.http.get { url = URL .. "/status/404", fail_on_status = false })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("HTTP_404", step(r, "missing").error.code)
    assert.are.equal(1, step(r, "missing").attempts)
    assert.are.equal(404, step(r, "tolerant").output.status)
    assert.is_false(step(r, "tolerant").output.ok)
  end)

  it("enforces timeouts, redirect bounds and the response size limit", function()
    local r = run([[
      local c = { on_error = "continue" }
      wf:step("slow", af.http.get { url = URL .. "/delay/2000", timeout = "50ms" }, c)
      wf:step("redirects", af.http.get { url = URL .. "/redirect/3", max_redirects = 5 })
      wf:step("too_many", af.http.get { url = URL .. "/redirect/3", max_redirects = 1 }, c)
      wf:step("big", af.http.get { url = URL .. "/big/100000", max_response_bytes = 1000 }, c)
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("HTTP_TIMEOUT", step(r, "slow").error.code)
    assert.is_true(step(r, "redirects").output.body.redirected)
    assert.are.equal("HTTP_LIMIT", step(r, "too_many").error.code)
    assert.truthy(step(r, "too_many").error.message:find("redirects", 1, true))
    assert.are.equal("HTTP_LIMIT", step(r, "big").error.code)
  end)

  it("reports a malformed JSON response clearly", function()
    local r = run([[
      wf:step("auto", af.http.get { url = URL .. "/bad-json" })
      wf:step("strict", af.http.get { url = URL .. "/bad-json", response = "json" },
              { on_error = "continue" })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal('{"truncated": ', step(r, "auto").output.body)
    assert.are.equal("HTTP_BAD_JSON", step(r, "strict").error.code)
  end)

  it("opens the circuit after repeated failures, then lets one probe through", function()
    local r = run([[
      wf:step("calls", function()
        local codes = {}
        local function call()
          local ok, res = pcall(af.http.get, { url = URL .. "/flaky/spec-breaker/2",
                                               breaker = { threshold = 2, cooldown = "200ms" } })
          codes[#codes + 1] = ok and res.status or res.code
        end
        call() call() call()  -- 503, 503, then the circuit is open
        af.sleep(250)
        call() call()         -- the probe succeeds and closes it
        return codes
      end)
      wf:step("count", af.http.get { url = URL .. "/requests" }, { after = "calls" })
    ]])
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.same({ "HTTP_503", "HTTP_503", "CIRCUIT_OPEN", 200, 200 }, step(r, "calls").output)
    assert.are.equal(4, step(r, "count").output.body["/flaky/spec-breaker/2"])
  end)

  it("verifies TLS peers by default; insecure = true skips it", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.are.equal(0, (h.sh("mkdir -p " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes " ..
      "-subj /CN=localhost -days 1 -keyout " .. dir .. "/k.pem -out " .. dir .. "/c.pem 2>/dev/null")))
    -- port 0: the server picks a free one and prints it ("ACCEPT 127.0.0.1:PORT")
    os.execute("openssl s_server -accept 127.0.0.1:0 -cert " .. dir .. "/c.pem -key " .. dir ..
               "/k.pem -www > " .. dir .. "/out 2>&1 & echo $! > " .. dir .. "/pid")
    local port
    for _ = 1, 100 do
      port = h.exists(dir .. "/out") and h.read(dir .. "/out"):match("ACCEPT 127%.0%.0%.1:(%d+)")
      if port then break end
      os.execute("sleep 0.05")
    end
    assert.truthy(port, "openssl s_server did not start")
    local url = "https://127.0.0.1:" .. port .. "/"
    local r = run([[
      wf:step("checked", af.http.get { url = "]] .. url .. [[" }, { on_error = "continue" })
      wf:step("insecure", af.http.get { url = "]] .. url .. [[", insecure = true })
    ]])
    h.sh("kill $(cat " .. dir .. "/pid); rm -rf " .. dir)
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("HTTP_CONNECT", step(r, "checked").error.code)
    assert.truthy(step(r, "checked").error.message:lower():find("certificate", 1, true),
                  step(r, "checked").error.message)
    assert.are.equal(200, step(r, "insecure").output.status)
  end)

  it("refuses a bad config at definition time with the path of the value", function()
    local r = run([[ wf:step("bad", af.http.get { url = URL, timeout = true }) ]])
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("invalid config for 'http.request': $.timeout", 1, true), r.stderr)
    r = run([[ wf:step("bad", af.http.get { url = URL, colour = "red" }) ]])
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find('unexpected property "colour"', 1, true), r.stderr)
  end)
end)
