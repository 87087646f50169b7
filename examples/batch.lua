-- batch.lua -- a nightly batch: page through a (simulated) API with a bounded loop, then score
-- every record with a foreach that runs at most 3 bodies at a time.
--
-- Shows: a schedule trigger (cron + timezone), af.loop with its required bound (max), af.foreach
-- with a concurrency limit whose results come back in item order even though later items finish
-- first (each body waits with af.sleep for a different time), a delay step, vars, af.log, and
-- af.json encode/decode.
--
-- Run:  agentflow run examples/batch.lua
--       agentflow run examples/batch.lua --input '{"pages": 2}'
local af = require "agentflow"

local wf = af.workflow "batch" {
  description = "Nightly lead scoring over every page of the CRM export",
  retry = { attempts = 2, initial = "10ms" },
  timeout = "5m",
  vars = {
    page_size = 3,
    -- the "API": leads by page; a real workflow would call an HTTP node here
    leads = {
      { "ada@example.com", "bob@example.org", "cy@example.net" },
      { "dee@example.com", "eve@example.org", "fay@example.net" },
      { "gus@example.com", "hal@example.org" },
    },
    weights = { com = 30, org = 20, net = 10 },
  },
  sample_input = { pages = 3 },
  output = function(ctx)
    return { pages = ctx.steps.fetch_all.page, leads = ctx.steps.score.n,
             top = ctx.steps.score.top, scores = ctx.steps.score_each }
  end,
}
wf:on(af.schedule { cron = "30 2 * * *", timezone = "Europe/Berlin", missed = "run_once" })
wf:on(af.manual {})

-- while there is a next page: fetch it. `max` bounds the loop; going past it fails the step.
local fetch_all = wf:step("fetch_all", af.loop {
  init = { page = 0, items = af.array(), more = true },
  condition = function(state, ctx) return state.more end,
  body = function(state, i, ctx)
    local page = ctx.vars.leads[i] or {}
    for _, email in ipairs(page) do state.items[#state.items + 1] = email end
    af.log(string.format("page %d: %d leads", i, #page))
    return { page = i, items = state.items, more = i < ctx.trigger.pages }
  end,
  max = 10,
})

-- let the rate limit of the scoring API recover
local pause = wf:step("rate_limit_pause", af.delay "20ms", { after = fetch_all })

-- at most 3 bodies at a time; a later item may finish first, yet the results keep item order
local score_each = wf:step("score_each", af.foreach {
  items = function(ctx) return ctx.steps.fetch_all.items end,
  concurrency = 3,
  body = function(email, index, ctx)
    af.sleep((9 - index) * 3) -- later items answer sooner
    local tld = email:match("%.(%a+)$")
    local score = (ctx.vars.weights[tld] or 0) + #email
    -- a round trip through JSON, as a body calling an API would do
    return af.json.decode(af.json.encode({ email = email, score = score, position = index }))
  end,
}, { after = pause })

wf:step("score", af.transform(function(ctx)
  local best
  for _, r in ipairs(ctx.steps.score_each) do
    if best == nil or r.score > best.score then best = r end
  end
  return { n = #ctx.steps.score_each, top = best.email }
end), { after = score_each })

return wf
