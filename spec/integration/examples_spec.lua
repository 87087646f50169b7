-- Every workflow in examples/ runs bare (`agentflow run examples/NAME.lua`), exits 0 and gives
-- the result written down for it below; `check` accepts it in every format. A new example
-- without an entry in EXPECT fails here, so its output gets pinned down too.
local helpers = require "spec.helpers"

local null = helpers.null

-- What each example must produce. A file maps to a list of runs: env (variables to set, false
-- to unset), result (compared whole), check (more assertions on the run: r.json is the result).
local EXPECT = {
  ["hello.lua"] = {
    {
      result = {
        email = { to = "ada@example.com", subject = "Welcome to agentflow",
                  body = "Hello, Ada!", attachments = {}, headers = {} },
        follow_up = { delayed_ms = 30 },
      },
      check = function(r)
        assert.are.equal("array", helpers.json_type(r.json.email.attachments))
        assert.are.equal("object", helpers.json_type(r.json.email.headers))
        assert.truthy(r.stderr:find("greeting Ada", 1, true), "af.log line missing")
      end,
    },
  },

  ["support-triage.lua"] = {
    {
      result = {
        ticket = "T-1042", category = "outage", priority = "urgent", sentiment = "negative",
        team = "sre", queue = "incidents", action = "open incident", sla_hours = 1,
        paged = true, notified_via = "#oncall-sre",
        customer = { name = "Acme Corp", tier = "enterprise", previous_tickets = 2 },
      },
      check = function(r)
        assert.truthy(r.stderr:find("ticket T-1042: outage, priority urgent", 1, true))
      end,
    },
  },

  ["retries-and-errors.lua"] = {
    {
      result = {
        in_stock = true, inventory_attempts = 3, unit_price = 49.5, pricing_attempts = 2,
        coupon = { applied = false, failed_step = "validate_coupon", code = "INVALID",
                   reason = "coupon 'SPRING-??' is malformed" },
        shipping = { source = "flat rate", amount = 4.99 },
        account = null,
      },
      check = function(r)
        -- the progress log shows the retries and the routed failures
        assert.truthy(r.stderr:find("retry%s+flaky_inventory%s+attempt 1"))
        assert.truthy(r.stderr:find("retry%s+flaky_inventory%s+attempt 2"))
        assert.truthy(r.stderr:find("succeeded%s+flaky_inventory%s+attempt 3"))
        assert.truthy(r.stderr:find("failed%s+carrier_quote%s+attempt 1 .* TIMEOUT"))
        assert.truthy(r.stderr:find("coupon rejected: coupon 'SPRING-??' is malformed", 1, true))
      end,
    },
  },

  ["fan-out.lua"] = {
    {
      result = {
        customer = { id = "cus-77", name = "Acme Corp", plan = "enterprise" },
        orders_waited_ms = 80,
        risk = { fraud_score = 0.02, flagged = false, credit_limit = 50000, currency = "EUR",
                 cooldown_ms = 15 },
      },
    },
  },

  ["batch.lua"] = {
    {
      result = {
        pages = 3, leads = 8, top = "ada@example.com",
        scores = {
          { email = "ada@example.com", score = 45, position = 1 },
          { email = "bob@example.org", score = 35, position = 2 },
          { email = "cy@example.net", score = 24, position = 3 },
          { email = "dee@example.com", score = 45, position = 4 },
          { email = "eve@example.org", score = 35, position = 5 },
          { email = "fay@example.net", score = 25, position = 6 },
          { email = "gus@example.com", score = 45, position = 7 },
          { email = "hal@example.org", score = 35, position = 8 },
        },
      },
      check = function(r)
        local a = r.stderr:find("page 1: 3 leads", 1, true)
        local b = r.stderr:find("page 3: 2 leads", 1, true)
        assert.truthy(a and b and a < b, "loop log lines missing or out of order")
      end,
    },
  },

  ["sub-workflow.lua"] = {
    {
      result = {
        order = "ord-5001", lines = 2, subtotal = 125, discount = 12.5, vat = 22.5,
        total = 135, list_total = 150, member_total = 112.5,
      },
      check = function(r)
        local _, calls = r.stderr:gsub("call price%-order", "")
        assert.are.equal(3, calls, "expected three sub-workflow runs in the log")
      end,
    },
  },

  ["triggers.lua"] = {
    {
      result = { started_by = "webhook", mode = "push", count = 1, subjects = { "Invoice #88" } },
    },
  },

  ["secrets.lua"] = {
    { -- bare: the token is not set, the handler says what to do
      env = { DEMO_API_TOKEN = false },
      result = { authorized = false, code = "SECRET_MISSING",
                 hint = "set DEMO_API_TOKEN in the environment of agentflow" },
    },
    { -- with the token: it never shows, neither in the result nor in the log
      env = { DEMO_API_TOKEN = "tok-3f9a7c1e" },
      result = {
        authorized = true,
        request = { method = "GET", url = "https://api.example.com/v1/tickets",
                    headers = { Authorization = "***" } },
        audit = { token_length = 12, logged = "token ***" },
      },
      check = function(r)
        assert.is_nil(r.stdout:find("tok-3f9a7c1e", 1, true))
        assert.is_nil(r.stderr:find("tok-3f9a7c1e", 1, true))
        assert.truthy(r.stderr:find("with token ***", 1, true))
      end,
    },
  },
}

local EXAMPLES = helpers.list("examples", "%.lua$")
local LIBS = helpers.list("examples/lib", "%.lua$")

describe("examples", function()
  it("are there", function()
    assert.is_true(#EXAMPLES >= 7, "expected at least 7 examples, found " .. #EXAMPLES)
    assert.truthy(helpers.exists(helpers.example("support-triage.lua")), "the main example")
  end)

  it("all have expectations here (and every expectation has its example)", function()
    for _, name in ipairs(EXAMPLES) do
      assert.truthy(EXPECT[name], "examples/" .. name .. " has no entry in EXPECT ("
                    .. "spec/integration/examples_spec.lua): write down what it must output")
    end
    for name in pairs(EXPECT) do
      assert.truthy(helpers.exists(helpers.example(name)),
                    "EXPECT names a missing example " .. name)
    end
  end)

  for _, name in ipairs(EXAMPLES) do
    local file = helpers.example(name)

    describe(name, function()
      it("opens with a comment saying what it shows and how to run it", function()
        local src = helpers.read(file)
        assert.truthy(src:find("^%-%- " .. name:gsub("%p", "%%%0") .. " %-%- "),
                      name .. " must start with '-- " .. name .. " -- what it is'")
        assert.truthy(src:find("%-%- Shows:"), name .. ": the header says what it shows")
        assert.truthy(src:find("%-%- Run:.-agentflow run examples/" .. name:gsub("%p", "%%%0")),
                      name .. ": the header says how to run it")
      end)

      for i, case in ipairs(EXPECT[name] or {}) do
        it("runs bare and gives its result" .. (i > 1 and " (case " .. i .. ")" or ""), function()
          local r = helpers.run({ "run", file }, case.env)
          assert.are.equal(0, r.code, helpers.describe_run(r))
          assert.is_table(r.json, "stdout is not a JSON object:\n" .. helpers.describe_run(r))
          assert.are.same(case.result, r.json)
          if case.check then case.check(r) end
        end)
      end

      it("passes check (text, json, dot)", function()
        local t = helpers.run({ "check", file })
        assert.are.equal(0, t.code, helpers.describe_run(t))
        assert.truthy(t.stdout:find("^workflow "), t.stdout)
        local j = helpers.run({ "check", file, "--format", "json" })
        assert.are.equal(0, j.code, helpers.describe_run(j))
        assert.is_table(j.json)
        assert.is_string(j.json.name)
        assert.truthy(#j.json.steps > 0)
        assert.truthy(t.stdout:find("workflow " .. j.json.name, 1, true))
      end)

      it("renders with Graphviz", function()
        local d = helpers.run({ "check", file, "--format", "dot" })
        assert.are.equal(0, d.code, helpers.describe_run(d))
        assert.truthy(d.stdout:find("^digraph "))
        local tmp = helpers.tmpfile(d.stdout)
        local code, svg, err = helpers.sh("dot -Tsvg " .. helpers.quote(tmp))
        os.remove(tmp)
        assert.are.equal(0, code, "dot -Tsvg failed: " .. err .. "\n" .. d.stdout)
        assert.truthy(svg:find("<svg", 1, true))
      end)
    end)
  end

  for _, name in ipairs(LIBS) do
    it("lib/" .. name .. " passes check and runs on its own", function()
      local file = helpers.path("examples/lib", name)
      for _, fmt in ipairs({ "text", "json", "dot" }) do
        local r = helpers.run({ "check", file, "--format", fmt })
        assert.are.equal(0, r.code, helpers.describe_run(r))
      end
      local r = helpers.run({ "run", file })
      assert.are.equal(0, r.code, helpers.describe_run(r))
    end)
  end

  -- The examples are the DSL's tour: together they must show every construct.
  it("together use every construct of the DSL", function()
    local types, triggers, seen = {}, {}, {}
    local source = {}
    for _, name in ipairs(EXAMPLES) do
      local file = helpers.example(name)
      source[#source + 1] = helpers.read(file)
      local r = helpers.run({ "check", file, "--format", "json" })
      assert.are.equal(0, r.code, helpers.describe_run(r))
      for _, t in ipairs(r.json.triggers) do
        triggers[t.type] = true
        local c = t.config
        if t.type == "webhook" and type(c.hmac) == "table" and
           tostring(c.hmac.secret):find("^<secret ") then seen.webhook_hmac_secret = true end
        if t.type == "schedule" and c.cron and c.timezone then seen.schedule_cron_tz = true end
      end
      local by_name = {}
      for _, s in ipairs(r.json.steps) do by_name[s.name] = s end
      for _, s in ipairs(r.json.steps) do
        types[s.type] = true
        if s.retry then seen.step_retry = true end
        if s.timeout_ms then seen.step_timeout = true end
        if s.on_error == "continue" then seen.on_error_continue = true end
        if s.join == "all" then seen.join_all = true end
        if s.type == "core.fail" and s.config.until_attempt then seen.fail_until = true end
        if s.type == "foreach" and (tonumber(s.config.concurrency) or 1) > 1 then
          seen.foreach_concurrency = true
        end
        if s.type == "loop" and s.config.max then seen.loop_bound = true end
        local parents = {}
        for _, d in ipairs(s.after) do
          seen.explicit_deps = true
          if d.port == "error" then seen.on_error_handler = true end
          if d.port == "yes" then seen.port_yes = true end
          if d.port == "no" then seen.port_no = true end
          if d.port == "default" then seen.switch_default = true end
          if d.port ~= null and d.port and by_name[d.step] and by_name[d.step].type == "switch"
             and d.port ~= "default" then seen.switch_case = true end
          parents[#parents + 1] = d.step
        end
        if #s.after == 1 then
          local key = "after:" .. s.after[1].step .. ":" .. tostring(s.after[1].port)
          if seen[key] then seen.two_after_same_step = true end
          seen[key] = true
        end
      end
    end
    local all = table.concat(source, "\n")
    for _, t in ipairs({ "lua", "condition", "switch", "foreach", "loop", "parallel", "delay",
                         "call", "core.echo", "core.fail" }) do
      assert.truthy(types[t], "no example uses a step of type " .. t)
    end
    for _, t in ipairs({ "webhook", "schedule", "event", "poll", "manual" }) do
      assert.truthy(triggers[t], "no example declares an af." .. t .. " trigger")
    end
    for _, k in ipairs({ "webhook_hmac_secret", "schedule_cron_tz", "step_retry", "step_timeout",
                         "on_error_continue", "on_error_handler", "join_all", "fail_until",
                         "foreach_concurrency", "loop_bound", "explicit_deps", "port_yes",
                         "port_no", "switch_default", "switch_case", "two_after_same_step" }) do
      assert.truthy(seen[k], "no example shows " .. k)
    end
    -- what `check` does not show: look at the source
    for _, pat in ipairs({ "af%.secret", "af%.sleep%(", "af%.log%(", "vars = {", "ctx%.error",
                           "ctx%.vars", "sample_input = {", "step_timeout = ", "timeout = ",
                           "retry = { attempts", "af%.node \"core%.echo\"", "af%.call" }) do
      assert.truthy(all:find(pat), "no example uses " .. pat)
    end
  end)
end)
