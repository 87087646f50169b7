-- `agentflow execute` for real: a server started with helpers.serve, workflows stored through the
-- REST API, then run by id and by name from the command line; exit codes and messages.
local h = require "spec.helpers"
local json = require "dkjson"

local SRV

local ADDER = [[
local af = require "agentflow"
local wf = af.workflow "adder" { sample_input = { a = 1, b = 2 } }
wf:step("sum", function(ctx) return ctx.trigger.a + ctx.trigger.b end)
return wf
]]

local FAILING = [[
local af = require "agentflow"
local wf = af.workflow "charge" {}
wf:step("check", function(ctx)
  error(af.fatal("amount must be positive", "BAD_AMOUNT"))
end)
return wf
]]

local SLOW = [[
local af = require "agentflow"
local wf = af.workflow "slowpoke" {}
wf:step("nap", function() af.sleep(1500) return "rested" end)
return wf
]]

local function store(script, name)
  local status, w = SRV.call("POST", "/api/workflows", json.encode({ source = script, name = name }),
                             "application/json")
  assert.are.equal(201, status)
  return w
end

local function execute(args, env)
  local all = { "execute" }
  for _, a in ipairs(args) do all[#all + 1] = a end
  return h.run(all, env)
end

describe("agentflow execute", function()
  local adder, failing, slow
  setup(function()
    SRV = h.serve()
    adder = store(ADDER)
    failing = store(FAILING)
    slow = store(SLOW)
  end)
  teardown(function()
    if SRV then SRV.close() end
  end)

  it("runs a workflow by id with an input and prints the execution as JSON", function()
    local r = execute({ adder.id, "--input", '{"a":2,"b":3}', "--server", SRV.url, "--json" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("succeeded", r.json.status)
    assert.are.equal(5, r.json.result.sum)
    assert.are.equal(adder.id, r.json.workflow_id)
    assert.are.equal(2, r.json.input.a)
    assert.truthy(r.json.id:match("^%x+%-%x+%-%x+%-%x+%-%x+$"))
  end)

  it("runs a workflow by name and prints a summary", function()
    local r = execute({ "adder", "--input", '{"a":20,"b":22}', "--server", SRV.url })
    assert.are.equal(0, r.code, h.describe_run(r))
    local first = r.stdout:match("^[^\n]*")
    assert.truthy(first:match("^succeeded  execution %x+%-[%x%-]+ in %S+$"), first)
    assert.truthy(r.stdout:find('"sum": 42', 1, true), r.stdout)
  end)

  it("runs the sample input without --input, from AGENTFLOW_SERVER, with a trailing slash", function()
    local r = execute({ "adder", "--json" }, { AGENTFLOW_SERVER = SRV.url .. "/" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(3, r.json.result.sum)
  end)

  it("reads the input from a file with @FILE", function()
    local file = h.tmpfile('{"a": 100, "b": 1}')
    local r = execute({ "adder", "-i", "@" .. file, "-s", SRV.url, "--json" })
    os.remove(file)
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(101, r.json.result.sum)
  end)

  it("runs the newest of the workflows with the same name", function()
    store(ADDER:gsub("ctx.trigger.a %+ ctx.trigger.b", "1"), "twin")
    local newer = store(ADDER:gsub("ctx.trigger.a %+ ctx.trigger.b", "2"), "twin")
    local r = execute({ "twin", "--server", SRV.url, "--json" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(newer.id, r.json.workflow_id)
    assert.are.equal(2, r.json.result.sum)
    -- a server that lists every workflow of the name makes the command warn; one that answers
    -- ?name= with the newest only does not
    if r.stderr ~= "" then
      assert.truthy(r.stderr:find("2 workflows are named 'twin'", 1, true), r.stderr)
    end
  end)

  it("finds a name beyond the first page of the list", function()
    local target = store(ADDER, "needle")
    -- 201 newer workflows push it to the second page (the list shows at most 200 a page)
    local body = h.tmpfile(json.encode({ source = ADDER, name = "hay" }))
    local code = h.sh("for i in $(seq 1 201); do curl -s -o /dev/null -H 'Content-Type: application/json'" ..
                      " --data-binary @" .. body .. " " .. SRV.url .. "/api/workflows || exit 1; done")
    os.remove(body)
    assert.are.equal(0, code)
    local r = execute({ "needle", "--server", SRV.url, "--json" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal(target.id, r.json.workflow_id)
  end)

  it("does not wait with --wait 0", function()
    local r = execute({ slow.id, "--wait", "0", "--server", SRV.url })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.truthy(r.stdout:find("not waited for", 1, true), r.stdout)
    r = execute({ slow.id, "--wait", "0", "--server", SRV.url, "--json" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.truthy(r.json.status == "running" or r.json.status == "queued", r.stdout)
  end)

  it("exits with 1 when the execution does not finish within --wait", function()
    local r = execute({ slow.id, "--wait", "0.2", "--server", SRV.url })
    assert.are.equal(1, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("is still running after 0.2s", 1, true), r.stderr)
  end)

  it("waits for a slow execution", function()
    local r = execute({ "slowpoke", "--wait", "10", "--server", SRV.url, "--json" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("rested", r.json.result.nap)
  end)

  it("exits with 1 and shows the error when the execution fails", function()
    local r = execute({ failing.id, "--server", SRV.url })
    assert.are.equal(1, r.code, h.describe_run(r))
    assert.truthy(r.stdout:match("^failed  execution "), r.stdout)
    assert.truthy(r.stdout:find("amount must be positive", 1, true), r.stdout)
    r = execute({ "charge", "--server", SRV.url, "--json" })
    assert.are.equal(1, r.code, h.describe_run(r))
    assert.are.equal("failed", r.json.status)
  end)

  it("exits with 2 on bad --input, naming the problem", function()
    local r = execute({ "adder", "--input", '{"a":1} x', "--server", SRV.url })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("agentflow: error: --input: line 1", 1, true), r.stderr)
    r = execute({ "adder", "--input", "@/no/such/file.json", "--server", SRV.url })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("cannot open /no/such/file.json", 1, true), r.stderr)
  end)

  it("exits with 2 for an unknown workflow", function()
    local r = execute({ "no-such-workflow", "--server", SRV.url })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("no workflow named 'no-such-workflow' on " .. SRV.url, 1, true),
                  r.stderr)
    r = execute({ "00000000-0000-4000-8000-000000000000", "--server", SRV.url })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("no workflow 00000000-0000-4000-8000-000000000000", 1, true),
                  r.stderr)
  end)

  it("exits with 2 when the server cannot be reached, naming the URL", function()
    local r = execute({ "adder", "--server", "http://127.0.0.1:1" })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("cannot reach the server at http://127.0.0.1:1", 1, true), r.stderr)
    r = execute({ adder.id }, { AGENTFLOW_SERVER = "http://127.0.0.1:1" })
    assert.are.equal(2, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("http://127.0.0.1:1", 1, true), r.stderr)
  end)

  it("exits with 2 on usage errors, 0 for --help", function()
    local r = execute({})
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("execute needs a workflow id or name", 1, true), r.stderr)
    r = execute({ "adder", "--bogus" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("unknown option '--bogus'", 1, true), r.stderr)
    r = execute({ "adder", "--wait", "soon" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("--wait needs a number of seconds", 1, true), r.stderr)
    r = execute({ "adder", "--wait" })
    assert.are.equal(2, r.code)
    r = execute({ "adder", "other" })
    assert.are.equal(2, r.code)
    r = execute({ "adder", "--server", "127.0.0.1:8080" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("--server needs an http:// or https:// URL", 1, true), r.stderr)
    r = execute({ "--help" })
    assert.are.equal(0, r.code)
    assert.truthy(r.stdout:find("usage: agentflow execute WORKFLOW", 1, true), r.stdout)
  end)
end)
