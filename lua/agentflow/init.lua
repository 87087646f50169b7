-- agentflow -- the workflow DSL. A script builds a workflow with these constructors and returns
-- it; the host compiles the description into a graph. Documented in docs/dsl.md.
local host_ok, host = pcall(require, "agentflow.host")
if not host_ok then host = nil end

local getinfo = debug and debug.getinfo -- captured before the sandbox removes `debug`
local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, rawget =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, rawget
local format, concat = string.format, table.concat

local af = { _VERSION = "0.1.0" }

-- ---------------------------------------------------------------------------------------------
-- values

af.null = host and host.null or setmetatable({}, { __tostring = function() return "null" end })
local ARRAY_MT = host and host.array_mt or { __name = "agentflow.array" }
local OBJECT_MT = host and host.object_mt or { __name = "agentflow.object" }

--- Marks a table as a JSON array (so an empty one stays `[]`).
function af.array(t) return setmetatable(t or {}, ARRAY_MT) end
--- Marks a table as a JSON object (so an empty one stays `{}`).
function af.object(t) return setmetatable(t or {}, OBJECT_MT) end

-- where the user's code called us: "file.lua:12"
local function caller(level)
  if not getinfo then return "?" end
  local info = getinfo(level + 1, "Sl")
  if not info then return "?" end
  local src = info.source or "?"
  if src:sub(1, 1) == "@" or src:sub(1, 1) == "=" then src = src:sub(2) end
  return format("%s:%d", src, info.currentline or 0)
end

local function fail(level, fmt, ...)
  error(format(fmt, ...), level + 1)
end

local function is_duration(v)
  return type(v) == "number" and v >= 0 or type(v) == "string"
end

-- ---------------------------------------------------------------------------------------------
-- secrets

local SECRET_MT = {}
SECRET_MT.__index = SECRET_MT
SECRET_MT.__tostring = function() return "***" end
SECRET_MT.__name = "agentflow.secret"

--- A reference to a secret by name; its value is read only when a step runs.
function af.secret(name)
  if type(name) ~= "string" or not name:match("^[%w_%.%-]+$") then
    fail(2, "af.secret: expected a secret name (letters, digits, _ . -), got %s", tostring(name))
  end
  return setmetatable({ name = name }, SECRET_MT)
end
function af.is_secret(v) return getmetatable(v) == SECRET_MT end
--- The secret's value; only inside a running step (the host masks it in logs and results).
function SECRET_MT:get()
  if not host then error("af.secret():get() is only available when a step runs", 2) end
  return host.secret(self.name)
end

-- ---------------------------------------------------------------------------------------------
-- node specs: what a step does

local NODE_MT = { __name = "agentflow.node" }
local TOOL_MT = { __name = "agentflow.tool" }
local function node(t, level)
  t.where = t.where or caller(level + 1)
  return setmetatable(t, NODE_MT)
end
function af.is_node(v)
  local mt = getmetatable(v)
  return mt ~= nil and (mt == NODE_MT or mt.__name == "agentflow.node")
end

local function check_fn(level, ctor, field, v)
  if type(v) ~= "function" then
    fail(level + 1, "%s: '%s' must be a function, got %s", ctor, field, type(v))
  end
end

--- A transform: a Lua function of ctx whose return value is the step's output.
function af.transform(fn)
  check_fn(2, "af.transform", "fn", fn)
  return (node({ type = "lua", fn = fn }, 2))
end

--- If/else: fn(ctx) decides; dependents choose the `yes` or `no` port.
function af.condition(fn)
  check_fn(2, "af.condition", "fn", fn)
  return (node({ type = "condition", fn = fn, ports = { "yes", "no" } }, 2))
end

--- Switch: fn(ctx) returns a case name; dependents choose `s:case "name"` or `s.default`.
function af.switch(fn, cases)
  if type(fn) == "table" and cases == nil then fn, cases = fn.fn or fn[1], fn.cases end
  check_fn(2, "af.switch", "fn", fn)
  if type(cases) ~= "table" or #cases == 0 then
    fail(2, "af.switch: 'cases' must be a non-empty list of case names")
  end
  local ports, seen = {}, {}
  for i, c in ipairs(cases) do
    if type(c) ~= "string" or c == "" or c == "default" or c == "error" then
      fail(2, "af.switch: case %d must be a name other than 'default' or 'error'", i)
    end
    if seen[c] then fail(2, "af.switch: duplicate case '%s'", c) end
    seen[c] = true
    ports[#ports + 1] = c
  end
  ports[#ports + 1] = "default"
  return (node({ type = "switch", fn = fn, ports = ports }, 2))
end

local function check_body(level, ctor, v)
  if type(v) ~= "function" and not af.is_node(v) then
    fail(level + 1, "%s: 'body' must be a function or a node, got %s", ctor, type(v))
  end
end

--- Foreach: runs body(item, index, ctx) for each item, at most `concurrency` at a time; the
--- output is the list of results in item order.
function af.foreach(t)
  if type(t) ~= "table" then fail(2, "af.foreach: expected a table") end
  local items = t.items
  if type(items) ~= "table" and type(items) ~= "function" then
    fail(2, "af.foreach: 'items' must be a list or a function of ctx, got %s", type(items))
  end
  check_body(2, "af.foreach", t.body)
  local c = t.concurrency or 1
  if type(c) ~= "number" or c < 1 or c % 1 ~= 0 then
    fail(2, "af.foreach: 'concurrency' must be a positive integer")
  end
  return (node({ type = "foreach", items = items, body = t.body, concurrency = c }, 2))
end

--- While loop: state = init; while condition(state, ctx) do state = body(state, i, ctx) end.
--- `max` bounds the iterations (required); passing it fails the step.
function af.loop(t)
  if type(t) ~= "table" then fail(2, "af.loop: expected a table") end
  check_fn(2, "af.loop", "condition", t.condition)
  check_fn(2, "af.loop", "body", t.body)
  local max = t.max
  if type(max) ~= "number" or max < 1 or max % 1 ~= 0 then
    fail(2, "af.loop: 'max' (the bound on iterations) is required and must be a positive integer")
  end
  return (node({ type = "loop", init = t.init, condition = t.condition, body = t.body, max = max }, 2))
end
af.while_ = af.loop

--- Parallel group: runs every branch concurrently and joins; output maps branch names to results.
function af.parallel(branches)
  if type(branches) ~= "table" or next(branches) == nil then
    fail(2, "af.parallel: expected a table of named branches")
  end
  for k, v in pairs(branches) do
    if type(k) ~= "string" then fail(2, "af.parallel: branch names must be strings") end
    check_body(2, "af.parallel (branch '" .. k .. "')", v)
  end
  return (node({ type = "parallel", branches = branches }, 2))
end

--- Delay: waits for a duration ("200ms", "5s", "1h", or milliseconds) without holding a worker.
function af.delay(d)
  if type(d) == "table" and not af.is_node(d) then d = d.duration or d[1] end
  if not is_duration(d) and type(d) ~= "function" then
    fail(2, "af.delay: expected a duration such as \"5s\", got %s", type(d))
  end
  return (node({ type = "delay", config = { duration = d } }, 2))
end

--- Sub-workflow: runs another workflow (a file, relative to this one) and returns its result.
--- af.call "x.lua" is a node; af.call "x.lua" { input = ... } and af.call { workflow =, input = }
--- give it an input (a table or a function of ctx).
local CALL_MT = { __name = "agentflow.node" }
function af.call(target)
  local where = caller(2)
  if type(target) == "table" and not af.is_node(target) then
    local t = target
    if type(t.workflow) ~= "string" then fail(2, "af.call: 'workflow' must be a file name") end
    return (node({ type = "call", where = where,
                   config = { workflow = t.workflow, input = t.input } }, 2))
  end
  if type(target) ~= "string" then fail(2, "af.call: expected a workflow file name") end
  return setmetatable({ type = "call", where = where, config = { workflow = target } }, CALL_MT)
end
CALL_MT.__call = function(self, t)
  if t ~= nil and type(t) ~= "table" then fail(2, "af.call: expected a table of options") end
  return (node({ type = "call", where = caller(2),
                 config = { workflow = self.config.workflow, input = t and t.input } }, 2))
end
--- An LLM agent step (the agent plugin): af.agent { model = "openai:gpt-4o-mini", prompt = ...,
--- system =, tools = { af.tool {...} }, output = { field = "type" }, memory = { key = ... },
--- fallback = { "anthropic:..." }, max_iterations =, budget = { tokens =, cost = }, stream = }.
local AGENT_OPTIONS = { model = 1, fallback = 1, system = 1, prompt = 1, messages = 1, tools = 1,
  output = 1, output_schema = 1, memory = 1, max_iterations = 1, budget = 1, pricing = 1,
  stream = 1, temperature = 1, max_tokens = 1, timeout = 1, base_url = 1, api_key = 1,
  providers = 1 }

function af.agent(t)
  if type(t) ~= "table" then fail(2, "af.agent: expected a table of options") end
  for k in pairs(t) do
    if not AGENT_OPTIONS[k] then fail(2, "af.agent: unknown option '%s'", tostring(k)) end
  end
  if type(t.model) ~= "string" and type(t.model) ~= "function" then
    fail(2, "af.agent: 'model' (\"provider:model\") is required")
  end
  if t.prompt == nil and t.messages == nil then
    fail(2, "af.agent: 'prompt' (or 'messages') is required")
  end
  for i, tool in ipairs(t.tools or {}) do
    if getmetatable(tool) ~= TOOL_MT then fail(2, "af.agent: tools[%d] must be an af.tool", i) end
  end
  return (node({ type = "agent", config = t }, 2))
end

--- A tool for an agent: a name, a description, a JSON Schema for its arguments, and what it
--- runs: fn = function(args, ctx), node = a node (ctx.args holds the arguments), or
--- workflow = "file.lua" (the arguments are its input).
function af.tool(t)
  if type(t) ~= "table" or type(t.name) ~= "string" or not t.name:match("^[%a_][%w_%-]*$") then
    fail(2, "af.tool: 'name' must be letters, digits, _ or -")
  end
  local runs = (t.fn and 1 or 0) + (t.node and 1 or 0) + (t.workflow and 1 or 0)
  if runs ~= 1 then fail(2, "af.tool '%s': give exactly one of fn, node or workflow", t.name) end
  if t.fn and type(t.fn) ~= "function" then fail(2, "af.tool '%s': 'fn' must be a function", t.name) end
  if t.node and not af.is_node(t.node) then fail(2, "af.tool '%s': 'node' must be a node", t.name) end
  if t.parameters ~= nil and type(t.parameters) ~= "table" then
    fail(2, "af.tool '%s': 'parameters' must be a JSON Schema table", t.name)
  end
  return setmetatable(t, TOOL_MT)
end

--- Any registered node type by name: af.node "core.echo" { ... }.
function af.node(name)
  if type(name) ~= "string" or name == "" then fail(2, "af.node: expected a node type name") end
  local where = caller(2)
  return function(config)
    if config ~= nil and type(config) ~= "table" then
      fail(2, "af.node '%s': config must be a table", name)
    end
    local ports = host and host.node_ports and host.node_ports(name) -- a plugin type's own ports
    return (node({ type = name, config = config or {}, where = where, ports = ports }, 2))
  end
end

-- ---------------------------------------------------------------------------------------------
-- triggers

local TRIGGER_MT = { __name = "agentflow.trigger" }
local TRIGGER_CHECKS = {
  webhook = function(t)
    if type(t.path) ~= "string" or not t.path:match("^[%w%-_%./]+$") then
      return "'path' must be a URL path of letters, digits, - _ . /"
    end
    local sig = t.signature
    if sig ~= nil and (type(sig) ~= "table" or (sig.type ~= "github" and sig.type ~= "standard")
                       or (sig.secret == nil and sig.secrets == nil)) then
      return "'signature' is { type = \"github\" or \"standard\", secret = af.secret \"NAME\" }"
    end
    local r = t.response
    if r ~= nil and r ~= "immediate" and r ~= "wait" and
       not (type(r) == "table" and (r.mode == "wait" or r.mode == "immediate") and
            (r.fn == nil or type(r.fn) == "function") and (r.timeout == nil or is_duration(r.timeout))) then
      return "'response' is \"immediate\", \"wait\" or { mode = \"wait\", timeout = \"10s\", fn = function(execution) ... end }"
    end
    if t.input ~= nil and type(t.input) ~= "function" then
      return "'input' must be a function(request) returning the execution's input"
    end
  end,
  schedule = function(t)
    if type(t.cron) ~= "string" and not is_duration(t.every) then
      return "'cron' (a cron expression) or 'every' (a duration) is required"
    end
    if t.missed ~= nil and t.missed ~= "skip" and t.missed ~= "run_once" and t.missed ~= "run_all" then
      return "'missed' must be skip, run_once or run_all"
    end
  end,
  event = function(t)
    if type(t.type) ~= "string" or t.type == "" then return "'type' (an event type pattern) is required" end
    if t.filter ~= nil and type(t.filter) ~= "function" then return "'filter' must be a function" end
    if t.where ~= nil and type(t.where) ~= "table" then return "'where' must be a table of field predicates" end
  end,
  poll = function(t)
    if not is_duration(t.interval) then return "'interval' (a duration) is required" end
    if t.request ~= nil and (type(t.request) ~= "table" or type(t.request.url) ~= "string") then
      return "'request' is a table with a 'url' string"
    end
    if t.node ~= nil and type(t.node) ~= "string" then return "'node' is the name of a node type" end
    if t.config ~= nil and type(t.config) ~= "table" then return "'config' is a table (the node's config)" end
    if type(t.fn) ~= "function" and t.request == nil and t.node == nil then
      return "'request' (an HTTP request whose response is the items), 'node' (a node type whose output is the items) or 'fn' (a function returning items) is required"
    end
    if t.request ~= nil and t.node ~= nil then return "'request' and 'node' are two ways to poll: give one" end
  end,
  manual = function() end,
}

local TRIGGER_FIELDS = {
  webhook = { path = 1, method = 1, methods = 1, hmac = 1, signature = 1, headers = 1, response = 1,
              input = 1, description = 1, max_body = 1 },
  schedule = { cron = 1, every = 1, timezone = 1, missed = 1, max_catchup = 1, window = 1,
               overlap = 1, input = 1, description = 1 },
  event = { type = 1, where = 1, filter = 1, input = 1, description = 1 },
  poll = { interval = 1, jitter = 1, fn = 1, request = 1, node = 1, config = 1, key = 1, hash = 1,
           baseline = 1, max_per = 1, input = 1, description = 1 },
  manual = { input_schema = 1, description = 1 },
}

local function trigger(kind)
  return function(t)
    t = t or {}
    if type(t) ~= "table" then fail(2, "af.%s: expected a table", kind) end
    for k in pairs(t) do
      if not TRIGGER_FIELDS[kind][k] then fail(2, "af.%s: unknown field '%s'", kind, tostring(k)) end
    end
    local problem = TRIGGER_CHECKS[kind](t)
    if problem then fail(2, "af.%s: %s", kind, problem) end
    return setmetatable({ type = kind, config = t, where = caller(2) }, TRIGGER_MT)
  end
end
af.webhook, af.schedule, af.event, af.poll, af.manual =
  trigger "webhook", trigger "schedule", trigger "event", trigger "poll", trigger "manual"

--- A plugin's trigger type: af.trigger "name" { ...its config..., input = fn, description = "..." }
function af.trigger(name)
  if type(name) ~= "string" or name == "" then fail(2, "af.trigger: expected a trigger type name") end
  return function(t)
    t = t or {}
    if type(t) ~= "table" then fail(2, "af.trigger \"%s\": expected a table", name) end
    if t.input ~= nil and type(t.input) ~= "function" and type(t.input) ~= "table" then
      fail(2, "af.trigger \"%s\": 'input' is a function or a table", name)
    end
    local config = {}
    for k, v in pairs(t) do
      if k ~= "input" and k ~= "description" then config[k] = v end
    end
    return setmetatable({ type = "plugin", config = { type = name, config = config, input = t.input,
                                                      description = t.description },
                          where = caller(2) }, TRIGGER_MT)
  end
end

-- ---------------------------------------------------------------------------------------------
-- workflows and steps

local WF = {}
WF.__index = WF
WF.__name = "agentflow.workflow"
local STEP = {}
STEP.__name = "agentflow.step"

local function port(step, name) return { step = step.name, port = name, __port = true } end

local function has_port(s, name)
  for _, p in ipairs(rawget(s, "node").ports or {}) do
    if p == name then return true end
  end
  return false
end

local function ports_text(s)
  local ports = rawget(s, "node").ports
  return ports and table.concat(ports, ", ") .. ", error" or "error"
end

STEP.__index = function(s, k)
  if STEP[k] then return STEP[k] end
  local name = rawget(s, "name")
  if k == "error" or ((k == "yes" or k == "no" or k == "default") and has_port(s, k)) then
    return port(s, k)
  end
  if type(k) == "string" and has_port(s, k) then
    if rawget(s, "node").type ~= "switch" then return port(s, k) end -- a plugin type's port
    fail(2, "step '%s': write %s:case \"%s\" for a switch case", name, name, k)
  end
  fail(2, "step '%s' has no port or field '%s' (ports: %s)", name, tostring(k), ports_text(s))
end
--- The handle of a switch case, for `after =`.
function STEP:case(name)
  if not has_port(self, name) then
    fail(2, "step '%s' has no case '%s' (ports: %s)", rawget(self, "name"), tostring(name),
         ports_text(self))
  end
  return port(self, name)
end

local OPTIONS = { description = "string", retry = "table", timeout = "duration",
  step_timeout = "duration", vars = "table", sample_input = "table", limits = "table",
  output = "function", version = "string", tags = "table", concurrency = "number" }

local LIMITS = { instructions = "number", memory = "string" }

local function check_options(level, what, t, known)
  for k, v in pairs(t) do
    local want = known[k]
    if not want then fail(level + 1, "%s: unknown option '%s'", what, tostring(k)) end
    local ok = want == "duration" and is_duration(v) or type(v) == want
    if not ok then
      fail(level + 1, "%s: option '%s' must be %s, got %s", what, k,
           want == "duration" and "a duration such as \"5s\"" or "a " .. want, type(v))
    end
  end
end

--- af.workflow "name" { options } -> a workflow to add triggers and steps to.
function af.workflow(name)
  if type(name) ~= "string" or not name:match("^[%w][%w%-_%.]*$") then
    fail(2, "af.workflow: expected a name of letters, digits, - _ . (got %s)", tostring(name))
  end
  local where = caller(2)
  return function(opts)
    opts = opts or {}
    if type(opts) ~= "table" then fail(2, "af.workflow '%s': options must be a table", name) end
    check_options(2, "af.workflow '" .. name .. "'", opts, OPTIONS)
    if opts.concurrency ~= nil and (opts.concurrency < 1 or opts.concurrency % 1 ~= 0) then
      fail(2, "af.workflow '%s': option 'concurrency' must be a whole number >= 1", name)
    end
    if opts.limits then check_options(2, "af.workflow '" .. name .. "' limits", opts.limits, LIMITS) end
    return setmetatable({ name = name, options = opts, where = where,
                          triggers = {}, steps = {}, by_name = {} }, WF)
  end
end

--- Declares a trigger: wf:on(af.webhook { ... }).
function WF:on(t)
  if getmetatable(t) ~= TRIGGER_MT then
    fail(2, "wf:on: expected a trigger (af.webhook, af.schedule, af.event, af.poll, af.manual)")
  end
  self.triggers[#self.triggers + 1] = t
  return self
end

local STEP_OPTIONS = { after = "any", retry = "table", timeout = "duration", on_error = "any",
  join = "string", description = "string" }

local function dep_of(level, v)
  if type(v) == "string" then return { step = v } end
  if type(v) == "table" and rawget(v, "__port") then return { step = v.step, port = v.port } end
  if getmetatable(v) == STEP then return { step = v.name } end
  fail(level + 1, "'after' must name steps (a step, a port such as s.yes, or a name), got %s", type(v))
end

local function deps_of(level, after)
  if after == nil then return {} end
  if type(after) == "table" and getmetatable(after) == nil and not rawget(after, "__port") then
    local list = {}
    for i, v in ipairs(after) do list[i] = dep_of(level + 1, v) end
    return list
  end
  return { dep_of(level + 1, after) }
end

--- wf:step(name, node_or_function, { after =, retry =, timeout =, on_error =, join = }) -> handle.
function WF:step(name, what, opts)
  local where = caller(2)
  if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") then
    fail(2, "wf:step: step name must start with a letter or _ and hold letters, digits, _ or - (got %s)",
         tostring(name))
  end
  if type(what) == "function" then
    what = node({ type = "lua", fn = what, where = where }, 2)
  end
  if not af.is_node(what) then
    fail(2, "wf:step '%s': expected a function or a node (af.transform, af.condition, ...), got %s",
         name, type(what))
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail(2, "wf:step '%s': options must be a table", name) end
  for k, v in pairs(opts) do
    local want = STEP_OPTIONS[k]
    if not want then fail(2, "wf:step '%s': unknown option '%s'", name, tostring(k)) end
    if want == "duration" and not is_duration(v) or want ~= "duration" and want ~= "any" and type(v) ~= want then
      fail(2, "wf:step '%s': option '%s' has the wrong type (%s)", name, k, type(v))
    end
  end
  local on_error = opts.on_error
  if on_error ~= nil and on_error ~= "continue" then
    if getmetatable(on_error) == STEP then on_error = on_error.name
    elseif type(on_error) ~= "string" then
      fail(2, "wf:step '%s': 'on_error' must be a handler step, its name, or \"continue\"", name)
    end
  end
  if opts.join ~= nil and opts.join ~= "any" and opts.join ~= "all" then
    fail(2, "wf:step '%s': 'join' must be \"any\" or \"all\"", name)
  end
  local s = setmetatable({ name = name, node = what, where = where, after = deps_of(2, opts.after),
    retry = opts.retry, timeout = opts.timeout, on_error = on_error, join = opts.join,
    description = opts.description }, STEP)
  self.steps[#self.steps + 1] = s
  return s
end

function af.is_workflow(v) return getmetatable(v) == WF end

-- ---------------------------------------------------------------------------------------------
-- run-time helpers available to step code (host-backed)

local function need_host(name)
  return function(...)
    if not host then error("af." .. name .. " is only available when a step runs", 2) end
    return host[name](...)
  end
end
--- Waits without blocking other steps (yields the step's coroutine).
af.sleep = need_host "sleep"
--- A setting that is not secret (a base URL, a region), from where secrets come from (the
--- environment in `agentflow run`); nil when unset. Never masked.
function af.setting(name)
  if not host then return nil end
  local value = host.setting(name)
  return value
end
--- Milliseconds since the Unix epoch.
af.now = host and host.now or function() return os.time() * 1000 end
--- Writes a line to the execution log.
af.log = need_host "log"
--- An error value that is never retried: error(af.fatal("bad input")).
function af.fatal(message, code)
  return { message = tostring(message), code = code or "FATAL", retryable = false, __af_error = true }
end
--- An error value with a code and a retryable flag: error(af.error { code =, message = }).
function af.error(t)
  if type(t) == "string" then t = { message = t } end
  return { message = tostring(t.message or "error"), code = t.code or "ERROR",
           retryable = t.retryable ~= false, retry_after_ms = t.retry_after_ms, __af_error = true }
end
--- Runs a node (af.node "core.echo" {...}, af.delay "1s", af.call "x.lua", ...) from step code
--- and returns its output; waits without blocking other steps.
function af.run(node_spec, ctx)
  if not af.is_node(node_spec) then error("af.run: expected a node (af.node, af.delay, ...)", 2) end
  if not host or not host.in_step() then error("af.run is only available when a step runs", 2) end
  return require("agentflow.runtime").run(node_spec, ctx or {})
end
--- HTTP (the http plugin's http.request node). At the top level of a script these build steps:
---   wf:step("fetch", af.http.get { url = "https://...", query = { q = "x" } })
--- inside step code they run the request and return the response, waiting without blocking:
---   local res = af.http.post { url = ..., json = { ... } }  -- res.status, res.body, res.headers
af.http = {}
local function http(method)
  return function(t, opts)
    if type(t) == "string" then
      local url = t
      t = {}
      for k, v in pairs(opts or {}) do t[k] = v end
      t.url = url
    end
    if type(t) ~= "table" then
      fail(2, "af.http: expected a URL or a table of options, got %s", type(t))
    end
    local config = {}
    for k, v in pairs(t) do config[k] = v end
    config.method = config.method or method
    local spec = (node({ type = "http.request", config = config }, 2))
    if host and host.in_step() then return af.run(spec) end
    return spec
  end
end
af.http.request = http(nil)
for _, m in ipairs({ "get", "post", "put", "patch", "delete", "head" }) do
  af.http[m] = http(m:upper())
end

--- Records an entry in the execution's trace (shown in the --json record, secrets masked).
af.trace = need_host "trace"
--- Emits an event (type such as "order.created", data a table) for event triggers.
af.emit = need_host "emit"
--- Key-value state shared by the executions of this workflow (JSON values; ttl in ms).
af.state = {
  get = need_host "state_get",
  set = function(key, value, opts)
    if not host then error("af.state.set is only available when a step runs", 2) end
    return host.state_set(key, value, opts and opts.ttl)
  end,
}

--- LLM usage of this execution: af.usage.add(tokens, cost_usd) adds and returns the totals;
--- af.usage.get() returns them (tokens, cost_usd).
af.usage = {
  add = need_host "usage",
  get = function() return af.usage.add(0, 0) end,
}
--- JSON Schema validation: ok, or false and a message naming the path.
af.schema = { validate = need_host "schema_validate" }

--- Works out a config value the way the engine does: functions are called with ctx, secret
--- references become their values, tables are resolved deeply (for raw-config plugin types).
function af.resolve(value, ctx)
  return require("agentflow.runtime").resolve(value, ctx or {})
end

--- Runs functions concurrently (at most `limit` at a time) and returns their results in order;
--- the first failure cancels the rest and is raised.
function af.gather(fns, limit)
  if not host or not host.in_step() then error("af.gather is only available when a step runs", 2) end
  return require("agentflow.runtime").gather(fns, limit)
end

af.json = {
  encode = need_host "json_encode",
  decode = need_host "json_decode",
}

return af
