-- agentflow.plugin -- Lua plugins: the checks a plugin's table passes at load (Kong style: typed,
-- documented fields; semver; schemas), and running its node types inside an execution.
local P = {}

local NAME = "^[%a][%w%._%-]*$"
local PLUGIN_FIELDS = { name = "string", version = "string", description = "string",
                        nodes = "table", triggers = "table" }
local NODE_FIELDS = { name = "string", description = "string", schema = "table",
                      execute = "function", raw_config = "boolean", ports = "table" }
local TRIGGER_FIELDS = { name = "string", description = "string", schema = "table",
                         start = "function" }

local function check_fields(t, fields, what)
  for k, v in pairs(t) do
    local want = fields[k]
    if not want then error(string.format("%s: unknown field '%s'", what, tostring(k)), 0) end
    if type(v) ~= want then
      error(string.format("%s: field '%s' must be a %s, got %s", what, k, want, type(v)), 0)
    end
  end
end

local function check_types(list, fields, required, what)
  local out = {}
  for i, t in ipairs(list or {}) do
    local label = string.format("%s %d", what, i)
    if type(t) ~= "table" then error(label .. ": expected a table", 0) end
    check_fields(t, fields, label)
    if type(t.name) ~= "string" or not t.name:match(NAME) then
      error(label .. ": 'name' must start with a letter and hold letters, digits, . _ -", 0)
    end
    if type(t[required]) ~= "function" then
      error(string.format("%s '%s': '%s' (a function) is required", what, t.name, required), 0)
    end
    for k, p in ipairs(t.ports or {}) do
      if type(p) ~= "string" or not p:match("^[%a_][%w_%-]*$") or p == "error" or p == "default" then
        error(string.format("%s '%s': port %d must be a name other than 'error' and 'default'",
                            what, t.name, k), 0)
      end
    end
    out[i] = { name = t.name, description = t.description or "", schema = t.schema,
               raw_config = t.raw_config or false, ports = t.ports }
  end
  return out
end

--- Checks a plugin table; returns a plain description or raises a message.
function P.check(p)
  if type(p) ~= "table" then error("the plugin file must return a table", 0) end
  check_fields(p, PLUGIN_FIELDS, "plugin")
  if type(p.name) ~= "string" or not p.name:match("^[%a][%w_%-]*$") then
    error("plugin: 'name' must start with a letter and hold letters, digits, _ -", 0)
  end
  local v = p.version
  if type(v) ~= "string" or not (v:match("^%d+%.%d+%.%d+$") or
                                 v:match("^%d+%.%d+%.%d+[%-%+][%w%.%-%+]+$")) then
    error("plugin: 'version' must be semver (MAJOR.MINOR.PATCH)", 0)
  end
  local nodes = check_types(p.nodes, NODE_FIELDS, "execute", "node")
  local triggers = check_types(p.triggers, TRIGGER_FIELDS, "start", "trigger")
  if #nodes + #triggers == 0 then error("plugin: declares no node or trigger types", 0) end
  return { name = p.name, version = p.version, description = p.description or "",
           nodes = nodes, triggers = triggers }
end

--- Starts trigger type `name` of a loaded plugin: start(config, fire); fire(input) starts an
--- execution. start may keep running (af.sleep between polls) until the trigger is stopped.
function P.start_trigger(p, name, config, fire)
  for _, t in ipairs(p.triggers or {}) do
    if t.name == name then return t.start(config, fire) end
  end
  error("plugin '" .. tostring(p.name) .. "' has no trigger type '" .. name .. "'", 0)
end

--- Runs node type `name` of a loaded plugin: execute(config, ctx) -> output[, port].
function P.run_node(p, name, config, ctx)
  for _, t in ipairs(p.nodes or {}) do
    if t.name == name then return t.execute(config, ctx) end
  end
  error("plugin '" .. tostring(p.name) .. "' has no node type '" .. name .. "'", 0)
end

return P
