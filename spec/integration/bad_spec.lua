-- Broken workflow scripts: each gets a message with file:line (or the file) and exit 2 from
-- both `check` and `run`, never a crash or a hang.
local BIN = os.getenv("AGENTFLOW_BIN") or "build/agentflow"
local DIR = "spec/integration/fixtures/bad/"

-- LuaJIT's popen:close() gives no exit status, so the shell prints it after the output.
local function sh(cmd)
  local errf = os.tmpname()
  local p = io.popen(cmd .. " 2>" .. errf .. "; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local f = io.open(errf)
  local err = f:read("*a")
  f:close()
  os.remove(errf)
  local body, code = out:match("^(.-)__exit=(%d+)%s*$")
  return tonumber(code), body, err
end

-- file, where the error must point, what the message must say
local CASES = {
  { "syntax.lua", "syntax.lua:3:", "unexpected symbol near 'end'" },
  { "runtime_error.lua", "runtime_error.lua:5:", "attempt to index local 'x'" },
  { "cycle.lua", "cycle.lua:3:", "cycle: a -> b -> c -> a" },
  { "unknown_step.lua", "unknown_step.lua:4:", "depends on unknown step 'nosuchstep'" },
  { "unknown_type.lua", "unknown_type.lua:3:", "unknown node type 'zendesk.create_ticket'" },
  { "wrong_type.lua", "wrong_type.lua:3:", "'items' must be a list or a function of ctx, got number" },
  { "wrong_option.lua", "wrong_option.lua:2:", "retry.attempts must be an integer" },
  { "bad_duration.lua", "bad_duration.lua:3:", "invalid duration \"soon\"" },
  { "duplicate.lua", "duplicate.lua:4:", "duplicate step name 'a' (first declared at" },
  { "empty.lua", "empty.lua:2:", "has no steps" },
  { "returns_nothing.lua", "returns_nothing.lua:", "must return a workflow" },
  { "never_returns.lua", "never_returns.lua:3:", "instruction budget" },
  { "bad_port.lua", "bad_port.lua:4:", "step 'check' has no case 'maybe' (ports: yes, no, error)" },
  { "port_typo.lua", "port_typo.lua:4:", "step 'check' has no port or field 'yess' (ports: yes, no, error)" },
  { "switch_dot.lua", "switch_dot.lua:4:", "write route:case \"bug\" for a switch case" },
  { "unknown_limit.lua", "unknown_limit.lua:2:", "unknown option 'instrucions'" },
  { "deep_vars.lua", "deep_vars.lua:5:", "vars is nested deeper than 128 levels" },
  { "run_outside.lua", "run_outside.lua:3:", "af.run is only available when a step runs" },
  { "top_secret.lua", "top_secret.lua:3:", "secrets are only available when a step runs" },
  { "invalid_utf8.lua", "invalid_utf8.lua:3:", "invalid UTF-8" },
  { "invalid_utf8_escape.lua", "invalid_utf8_escape.lua:3:", "invalid UTF-8 in string at $.steps[0].config.text" },
  { "huge_literal.lua", "huge_literal.lua", "larger than the limit" },
  { "deep_table.lua", "deep_table.lua:3:", "too many syntax levels" },
  { "deep_config.lua", "deep_config.lua:6:", "nested deeper than" },
  { "not_a_function.lua", "not_a_function.lua:3:", "expected a function or a node" },
  { "sandbox_io.lua", "sandbox_io.lua:3:", "global 'io'" },
  { "sandbox_require.lua", "sandbox_require.lua:2:", "module 'ffi' is not available" },
  { "bad_cron.lua", "bad_cron.lua:3:", "af.schedule: cron '0 25 * * MON-FRI': hour '25' is out of range 0-23" },
  { "bad_zone.lua", "bad_zone.lua:3:", 'af.schedule: time zone "Mars/Olympus_Mons": no such zone' },
  { "bad_event_type.lua", "bad_event_type.lua:3:", "af.event: event type pattern 'order..created' has an empty segment" },
  { "bad_window.lua", "bad_window.lua:3:", "af.schedule: window.from and window.to are two different times HH:MM" },
}

describe("a broken workflow", function()
  for _, c in ipairs(CASES) do
    local file, where, says = c[1], c[2], c[3]
    for _, cmd in ipairs({ "check", "run" }) do
      it(cmd .. " " .. file .. " exits 2 with its location", function()
        local code, out, err = sh("timeout 20 " .. BIN .. " " .. cmd .. " " .. DIR .. file)
        assert.are.equal(2, code)
        assert.are.equal("", out)
        assert.truthy(err:find(where, 1, true), "no location " .. where .. " in: " .. err)
        assert.truthy(err:find(says, 1, true), "message lacks '" .. says .. "': " .. err)
      end)
    end
  end

  it("a missing file is a usage error", function()
    local code, _, err = sh(BIN .. " run " .. DIR .. "no-such-file.lua")
    assert.are.equal(2, code)
    assert.truthy(err:find("cannot open", 1, true))
  end)
end)

describe("the sandbox", function()
  local function run_src(src)
    local path = os.tmpname() .. ".lua"
    local f = io.open(path, "w")
    f:write(src)
    f:close()
    local code, out, err = sh("timeout 20 " .. BIN .. " run --json " .. path)
    os.remove(path)
    return code, out, err
  end

  -- each probe runs inside a step and returns what it could reach
  local PROBES = {
    io = "return io",
    os_execute = "return os.execute",
    os_getenv = "return os.getenv",
    ffi = "return (pcall(require, 'ffi'))",
    debug = "return debug",
    dump = "return string.dump",
    string_meta_dump = "return ('').dump",
    getfenv = "return getfenv",
    setfenv = "return setfenv",
    coroutine = "return coroutine",
    jit = "return jit",
    package = "return package",
    bytecode = "return (load('\\27LuaJ'))",
    loadfile = "return loadfile",
    dofile = "return dofile",
    collectgarbage = "return collectgarbage",
    string_mt = "return getmetatable('')",
  }

  for name, probe in pairs(PROBES) do
    it("denies " .. name, function()
      local src = "local af = require 'agentflow'\nlocal wf = af.workflow 'probe' {}\n" ..
        "wf:step('p', function() local v = (function() " .. probe .. " end)()\n" ..
        "  return v == nil or v == false end)\nreturn wf\n"
      local code, out, err = run_src(src)
      assert.are.equal(0, code, err)
      assert.truthy(out:find('"result": {%s*"p": true'), out)
    end)
  end

  it("allows os.time, os.date, string, table and math", function()
    local src = "local af = require 'agentflow'\nlocal wf = af.workflow 'ok' {}\n" ..
      "wf:step('p', function() return type(os.time()) == 'number' and os.date('!%Y', 0) == '1970'" ..
      " and ('%d'):format(3) == '3' and table.concat({1,2}, ',') == '1,2' and math.floor(2.5) == 2" ..
      " end)\nreturn wf\n"
    local code, out, err = run_src(src)
    assert.are.equal(0, code, err)
    assert.truthy(out:find('"p": true'), out)
  end)

  it("load() of text runs inside the sandbox", function()
    local src = "local af = require 'agentflow'\nlocal wf = af.workflow 'ok' {}\n" ..
      "wf:step('p', function() return load('return io == nil and require ~= nil')() end)\n" ..
      "return wf\n"
    local code, out, err = run_src(src)
    assert.are.equal(0, code, err)
    assert.truthy(out:find('"p": true'), out)
  end)
end)
