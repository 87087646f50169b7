-- The SDK as a plugin author uses it: install it, build the example plugins out of tree against
-- it (CMake package and pkg-config), load them with --plugins, list them, run workflows with them.
local h = require "spec.helpers"

local BUILD = h.BIN:match("^(.*)/[^/]+$") or "."
local TMP = os.tmpname()
os.remove(TMP)

local function ok(cmd)
  local code, out, err = h.sh(cmd)
  assert.are.equal(0, code, cmd .. "\n" .. out .. err)
  return out, err
end

describe("the plugin SDK", function()
  setup(function()
    ok("mkdir -p " .. TMP)
    ok("cmake --install " .. BUILD .. " --component sdk --prefix " .. TMP .. "/prefix")
  end)
  teardown(function() h.sh("rm -rf " .. TMP) end)

  it("installs the header, the CMake package and the pkg-config file", function()
    assert.is_true(h.exists(TMP .. "/prefix/include/agentflow/plugin.h"))
    assert.is_true(h.exists(TMP .. "/prefix/lib/cmake/AgentflowSDK/AgentflowSDKConfig.cmake"))
    local out = ok("PKG_CONFIG_PATH=" .. TMP .. "/prefix/lib/pkgconfig " ..
                   "pkg-config --variable=includedir agentflow-sdk")
    assert.is_true(h.exists(out:gsub("%s+$", "") .. "/agentflow/plugin.h"), out)
  end)

  it("builds examples/plugins/hello-c out of tree with find_package and runs it", function()
    ok("cmake -S examples/plugins/hello-c -B " .. TMP .. "/hello-c -DCMAKE_PREFIX_PATH=" ..
       TMP .. "/prefix >/dev/null")
    ok("cmake --build " .. TMP .. "/hello-c >/dev/null")
    assert.is_true(h.exists(TMP .. "/hello-c/hello-c.so"))
    local r = h.run({ "run", "examples/plugins/hello-c/hello.lua", "--json", "--plugins",
                      TMP .. "/hello-c" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("Hello, Ada!", r.json.steps.greet.output.greeting)
    assert.are.equal(20, r.json.result.wait.waited_ms)
    assert.truthy(r.stderr:find("greeting Ada", 1, true))
  end)

  it("builds with pkg-config alone, too", function()
    ok("cc -shared -fPIC -o " .. TMP .. "/pc-hello.so examples/plugins/hello-c/hello.c " ..
       "$(PKG_CONFIG_PATH=" .. TMP .. "/prefix/lib/pkgconfig pkg-config --cflags agentflow-sdk) " ..
       "$(pkg-config --cflags --libs jansson)")
    ok("mkdir -p " .. TMP .. "/pc && mv " .. TMP .. "/pc-hello.so " .. TMP .. "/pc/")
    local r = h.run({ "plugin", "list", "--json", "--plugins", TMP .. "/pc" })
    assert.are.equal(0, r.code, h.describe_run(r))
    local found
    for _, p in ipairs(r.json) do
      if p.name == "hello-c" then found = p end
    end
    assert.truthy(found, r.stdout)
    assert.are.same({ "hello.greet", "hello.wait" }, found.nodes)
  end)

  it("builds examples/plugins/hello-lua and runs it", function()
    ok("cmake -S examples/plugins/hello-lua -B " .. TMP .. "/hello-lua -DCMAKE_PREFIX_PATH=" ..
       TMP .. "/prefix >/dev/null")
    ok("cmake --build " .. TMP .. "/hello-lua >/dev/null")
    local r = h.run({ "run", "examples/plugins/hello-lua/workflow.lua", "--plugins",
                      TMP .. "/hello-lua" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("Hello, Grace!", r.json.greet.greeting)
  end)

  it("lists plugins and shows a type's schema", function()
    local r = h.run({ "plugin", "list", "--plugins", TMP .. "/hello-c", "--plugins",
                      TMP .. "/hello-lua" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.truthy(r.stdout:find("hello-c 1.0.0 (c)", 1, true), r.stdout)
    assert.truthy(r.stdout:find("hello-lua 1.0.0 (lua)", 1, true), r.stdout)
    assert.truthy(r.stdout:find("node    hello.wait", 1, true), r.stdout)
    r = h.run({ "plugin", "info", "hello.wait", "--plugins", TMP .. "/hello-c" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.are.equal("hello-c", r.json.plugin)
    assert.are.same({ "ms" }, r.json.config_schema.required)
    r = h.run({ "plugin", "info", "no.such.type" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("no node or trigger type 'no.such.type'", 1, true))
  end)

  it("refuses bad plugins with a message and keeps running", function()
    ok("mkdir -p " .. TMP .. "/bad && printf 'not a plugin' > " .. TMP .. "/bad/junk.so")
    ok("cp " .. BUILD .. "/spec/plugins/fixture-other-major.so " .. TMP .. "/bad/")
    ok("head -c 300 " .. TMP .. "/hello-c/hello-c.so > " .. TMP .. "/bad/truncated.so")
    local r = h.run({ "run", "examples/hello.lua", "--plugins", TMP .. "/bad" })
    assert.are.equal(0, r.code, h.describe_run(r))
    assert.truthy(r.stderr:find("junk.so: not an ELF shared object", 1, true), r.stderr)
    assert.truthy(r.stderr:find("fixture-other-major.so: built for plugin ABI 2.", 1, true), r.stderr)
    assert.truthy(r.stderr:find("truncated.so: cannot load", 1, true), r.stderr)
    r = h.run({ "run", "examples/hello.lua", "--plugins", TMP .. "/no-such-dir" })
    assert.are.equal(2, r.code)
  end)
end)
