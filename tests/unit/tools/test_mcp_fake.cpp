// The MCP client against a scripted fake server (bash, written by the test), so the protocol logic
// is tested without Python: handshake order, pagination, content rendering, server-to-client
// requests, isError, JSON-RPC errors, a hang (timeout), a crash and the restart after it, and the
// configuration file format.
#include <doctest/doctest.h>

#include <thread>

#include "tools/mcp.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;
namespace fs = std::filesystem;

namespace {

// Logs every line it receives to $LOG/received; answers initialize with protocol version $VERSION
// (default 2025-06-18, an earlier revision the client accepts). Tools: `show` (mixed content; asks the client for
// a ping first), `bad` (isError), `boom` (a JSON-RPC error), `slow` (never answers, but keeps reading), `die` (exits).
// tools/list comes in two pages. $INIT_LINES, $LIST_LINES and $CALL_LINES, when set, are written
// instead of the answer to initialize, tools/list or tools/call, with @ID@ replaced by the
// request's id, after $DELAY seconds when that is set.
const char* kFakeServer = R"SH(#!/bin/bash
echo "fake server starting" >&2
reply() { printf '{"jsonrpc":"2.0","id":%s,%s}\n' "$1" "$2"; }
while IFS= read -r line; do
  echo "$line" >> "$LOG/received"
  id=""; [[ $line =~ \"id\":([0-9]+) ]] && id=${BASH_REMATCH[1]}
  override=""
  case "$line" in
    *'"method":"initialize"'*) override=$INIT_LINES ;;
    *'"method":"tools/list"'*) override=$LIST_LINES ;;
    *'"method":"tools/call"'*) override=$CALL_LINES ;;
  esac
  if [[ -n $override ]]; then
    [[ -n $DELAY ]] && sleep "$DELAY"
    printf '%s\n' "${override//@ID@/$id}"
    continue
  fi
  case "$line" in
    *'"method":"initialize"'*)
      reply "$id" '"result":{"protocolVersion":"'"${VERSION:-2025-06-18}"'","capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"1"}}' ;;
    *'"method":"tools/list"'*'"cursor":"p2"'*)
      reply "$id" '"result":{"tools":[{"name":"die","inputSchema":{"type":"object"}},{"name":"look.up","description":"read only","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}]}' ;;
    *'"method":"tools/list"'*)
      reply "$id" '"result":{"tools":[{"name":"show","description":"Shows things.","inputSchema":{"type":"object","properties":{"what":{"type":"string"}},"required":["what"]}},{"name":"bad"},{"name":"boom"},{"name":"slow"}],"nextCursor":"p2"}' ;;
    *'"name":"show"'*)
      echo 'this line is not JSON-RPC'
      echo '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello"}}'
      echo '{"jsonrpc":"2.0","id":"s1","method":"ping"}'
      IFS= read -r answer; echo "$answer" > "$LOG/ping_answer"
      echo '{"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}}'
      IFS= read -r answer; echo "$answer" > "$LOG/sampling_answer"
      reply "$id" '"result":{"content":[{"type":"text","text":"first"},{"type":"image","data":"AAAA","mimeType":"image/png"},{"type":"resource","resource":{"uri":"file:///r.txt","text":"embedded"}},{"type":"text","text":"last"}]}' ;;
    *'"name":"look.up"'*)
      reply "$id" '"result":{"content":[],"structuredContent":{"answer":42}}' ;;
    *'"name":"bad"'*)
      reply "$id" '"result":{"content":[{"type":"text","text":"bad input: what is missing"}],"isError":true}' ;;
    *'"name":"boom"'*)
      reply "$id" '"error":{"code":-32602,"message":"Unknown tool: boom"}' ;;
    *'"name":"slow"'*)
      ;;
    *'"name":"die"'*)
      echo "fatal: out of cheese" >&2; exit 7 ;;
  esac
done
)SH";

struct FakeServer {
  TempDir dir{"dsa-mcp-fake"};
  McpServerConfig config;
  FakeServer() {
    write_text(dir / "server.sh", kFakeServer);
    fs::permissions(dir / "server.sh", fs::perms::owner_all);
    config = {"fake", (dir / "server.sh").string(), {}, {{"LOG", dir.path().string()}}};
  }
  // The server answers tools/list with one page holding these tools.
  void list(const std::string& tools_json) {
    config.env.emplace_back("LIST_LINES", R"({"jsonrpc":"2.0","id":@ID@,"result":{"tools":)" + tools_json + "}}");
  }
  // The server answers tools/call with this result member.
  void call_result(const std::string& result_json) {
    config.env.emplace_back("CALL_LINES", R"({"jsonrpc":"2.0","id":@ID@,"result":)" + result_json + "}");
  }
  std::vector<json> received() const {
    std::vector<json> out;
    std::istringstream in(read_text(dir / "received"));
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
};

// The one warning add_mcp_tools gives for these servers, or what it did instead.
std::string start_warning(ToolRegistry& reg, const std::vector<McpServerConfig>& servers,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto added = add_mcp_tools(reg, servers, timeout);
  if (!added.ok()) return "error: " + added.error().message;
  if (added->size() != 1) return std::to_string(added->size()) + " warnings";
  return added->front();
}

}  // namespace

TEST_CASE("MCP handshake and paginated tools/list against a fake server") {
  FakeServer fake;
  ToolRegistry reg;
  REQUIRE(add_mcp_tools(reg, {fake.config}).ok());
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"fake__show", "fake__bad", "fake__boom", "fake__slow", "fake__die", "fake__look_up"});
  ToolSpec show = reg.specs()[0];
  CHECK(show.description == "Shows things.");
  CHECK(show.parameters == json::parse(R"({"type":"object","properties":{"what":{"type":"string"}},"required":["what"]})"));
  CHECK(reg.specs()[1].parameters == json{{"type", "object"}});

  std::vector<json> got = fake.received();
  REQUIRE(got.size() == 4);
  CHECK(got[0] == json::parse(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",
                                  "capabilities":{},"clientInfo":{"name":"dsagent","version":"0.1.0"}}})"));
  CHECK(got[1] == json::parse(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
  CHECK(got[2] == json::parse(R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}})"));
  CHECK(got[3] == json::parse(R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"p2"}})"));
}

TEST_CASE("MCP tools/list that pages without end: a repeated cursor, a page cap, one deadline for all pages") {
  auto list_requests = [](const FakeServer& fake) {
    int n = 0;
    for (const json& m : fake.received()) n += m.value("method", "") == "tools/list";
    return n;
  };
  // Each page lists one tool named after the request's id.
  const std::string page = R"({"jsonrpc":"2.0","id":@ID@,"result":{"tools":[{"name":"t@ID@"}],"nextCursor":)";

  FakeServer repeats;
  repeats.config.env.emplace_back("LIST_LINES", page + R"("again"}})");
  ToolRegistry reg;
  CHECK(start_warning(reg, {repeats.config}) ==
        "MCP server 'fake': tools/list gave the cursor 'again' a second time; using the tools listed until then (2)");
  CHECK(list_requests(repeats) == 2);
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"fake__t2", "fake__t3"});

  FakeServer endless;
  endless.config.env.emplace_back("LIST_LINES", page + R"("c@ID@"}})");
  ToolRegistry endless_reg;
  CHECK(start_warning(endless_reg, {endless.config}) ==
        "MCP server 'fake': tools/list still had more after 100 pages; using the tools listed until then (100)");
  CHECK(list_requests(endless) == 100);
  CHECK(endless_reg.specs().size() == 100);

  // The start-up timeout bounds the whole listing, not each page.
  FakeServer slow;
  slow.config.env.emplace_back("LIST_LINES", page + R"("c@ID@"}})");
  slow.config.env.emplace_back("DELAY", "0.5");
  auto started = std::chrono::steady_clock::now();
  ToolRegistry slow_reg;
  CHECK(start_warning(slow_reg, {slow.config}, std::chrono::seconds(2)) ==
        "MCP server 'fake' skipped: tools/list timed out after 2 s");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
  CHECK(slow_reg.specs().empty());
}

TEST_CASE("MCP: a server's tools with the same name, or names that become the same, keep the first") {
  FakeServer fake;
  fake.list(R"([{"name":"echo","description":"first"},{"name":"echo","description":"second"},)"
            R"({"name":"a_b"},{"name":"a.b"},{"name":"other"},{"name":"echo"}])");
  ToolRegistry reg;
  CHECK(start_warning(reg, {fake.config}) ==
        "MCP server 'fake': left out tools whose names repeat one listed before (the first is kept): echo, "
        "a.b (as fake__a_b, like a_b), echo");
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"fake__echo", "fake__a_b", "fake__other"});
  CHECK(reg.specs()[0].description == "first");
}

TEST_CASE("MCP protocol version: earlier revisions are accepted, a server with an unknown one is skipped") {
  FakeServer fake;
  auto client = McpClient::spawn(fake.config);
  REQUIRE(client.ok());
  REQUIRE((*client)->open(std::chrono::seconds(10)).ok());
  CHECK((*client)->protocol_version() == "2025-06-18");
  CHECK((*client)->tools().size() == 6);

  fake.config.env.emplace_back("VERSION", "1999-01-01");
  ToolRegistry reg;
  CHECK(start_warning(reg, {fake.config}) ==
        "MCP server 'fake' skipped: initialize answered with protocol version '1999-01-01', which dsagent does not "
        "speak (it speaks 2025-11-25 and earlier revisions)");
  CHECK(reg.specs().empty());
}

TEST_CASE("MCP tools/call: content rendering, server requests, isError, JSON-RPC errors") {
  FakeServer fake;
  ToolRegistry reg;
  REQUIRE(add_mcp_tools(reg, {fake.config}).ok());
  TempDir work;
  ToolContext ctx = context_in(work);

  Observation shown = call_tool(reg, ctx, "fake__show", {{"what", "all"}});
  CHECK_FALSE(shown.is_error);
  CHECK(shown.text == "first\n[image: image/png, 4 bytes of base64]\nembedded\nlast");
  CHECK(fake.received().back() ==
        json::parse(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"show","arguments":{"what":"all"}}})"));
  CHECK(json::parse(read_text(fake.dir / "ping_answer")) == json::parse(R"({"jsonrpc":"2.0","id":"s1","result":{}})"));
  CHECK(json::parse(read_text(fake.dir / "sampling_answer")) ==
        json::parse(R"({"jsonrpc":"2.0","id":"s2","error":{"code":-32601,"message":"method not supported by dsagent"}})"));

  CHECK(call_tool(reg, ctx, "fake__look_up", json::object()).text == R"({"answer":42})");

  Observation bad = call_tool(reg, ctx, "fake__bad", json::object());
  CHECK(bad.is_error);
  CHECK(bad.text == "bad input: what is missing");

  Observation boom = call_tool(reg, ctx, "fake__boom", json::object());
  CHECK(boom.is_error);
  CHECK(boom.text == "MCP fake/boom: tools/call failed: Unknown tool: boom (JSON-RPC error -32602)");

  // The registry checks the server's schema before the call reaches the server.
  Observation missing = call_tool(reg, ctx, "fake__show", json::object());
  CHECK(missing.text == "fake__show: missing required argument 'what'");
}

TEST_CASE("MCP: a hanging call times out and is cancelled; a crash is reported and the server restarted") {
  FakeServer fake;
  ToolRegistry reg;
  REQUIRE(add_mcp_tools(reg, {fake.config}).ok());
  TempDir work;
  ToolContext ctx = context_in(work);
  ctx.timeout = std::chrono::seconds(1);

  Observation slow = call_tool(reg, ctx, "fake__slow", json::object());
  CHECK(slow.is_error);
  CHECK(slow.text == "MCP fake/slow: tools/call timed out after 1 s");
  CHECK(slow.seconds < 5);
  json cancelled = json::parse(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4,"reason":"timed out"}})");
  for (int i = 0; i < 100 && fake.received().back() != cancelled; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(fake.received().back() == cancelled);
  // The server is still usable.
  CHECK(call_tool(reg, ctx, "fake__bad", json::object()).text == "bad input: what is missing");

  FakeServer crashing;
  ToolRegistry reg2;
  REQUIRE(add_mcp_tools(reg2, {crashing.config}).ok());
  Observation died = call_tool(reg2, ctx, "fake__die", json::object());
  CHECK(died.is_error);
  CHECK(died.text ==
        "MCP fake/die: the server exited (exit code 7) during tools/call; its stderr ends with: "
        "fatal: out of cheese");
  // The next call starts the server again: a second handshake, then the call.
  Observation again = call_tool(reg2, ctx, "fake__bad", json::object());
  CHECK(again.text == "bad input: what is missing");
  std::vector<std::string> methods;
  for (const json& m : crashing.received()) methods.push_back(m.value("method", ""));
  CHECK(methods == std::vector<std::string>{"initialize", "notifications/initialized", "tools/list", "tools/list", "tools/call",
                                            "initialize", "notifications/initialized", "tools/call"});
}

TEST_CASE("MCP: members of the wrong JSON type are one error naming the server and the member") {
  struct Case {
    const char* tools;
    const char* error;
  };
  for (const Case& c : {
           Case{"5", "tools/list result: tools is a number, expected an array"},
           Case{R"([{"name":"ok"},"two"])", "tools/list result: tools[1] is a string, expected an object"},
           Case{R"([{"name":7}])", "tools/list result: tools[0].name is a number, expected a string"},
           Case{R"([{"description":"x"}])", "tools/list result: tools[0].name is missing"},
           Case{R"([{"name":"a","description":["x"]}])",
                "tools/list result: tools[0].description is an array, expected a string"},
           Case{R"([{"name":"a","inputSchema":"object"}])",
                "tools/list result: tools[0].inputSchema is a string, expected an object"},
           Case{R"([{"name":"a","annotations":{"readOnlyHint":"yes"}}])",
                "tools/list result: tools[0].annotations.readOnlyHint is a string, expected a boolean"},
       }) {
    CAPTURE(c.tools);
    FakeServer fake;
    fake.list(c.tools);
    ToolRegistry reg;
    CHECK(start_warning(reg, {fake.config}) == std::string("MCP server 'fake' skipped: ") + c.error);
    CHECK(reg.specs().empty());
  }

  FakeServer wrong_version;
  wrong_version.config.env.emplace_back(
      "INIT_LINES", R"({"jsonrpc":"2.0","id":@ID@,"result":{"protocolVersion":20250618,"capabilities":{}}})");
  ToolRegistry reg;
  CHECK(start_warning(reg, {wrong_version.config}) ==
        "MCP server 'fake' skipped: initialize result: protocolVersion is a number, expected a string");

  // A tools/call result of the wrong shape is an error observation; the server stays in use.
  TempDir work;
  ToolContext ctx = context_in(work);
  struct CallCase {
    const char* result;
    const char* text;
  };
  for (const CallCase& c : {
           CallCase{R"({"content":{"type":"text","text":"x"}})",
                    "tools/call result: content is an object, expected an array"},
           CallCase{R"({"content":[{"type":"text","text":42}]})",
                    "tools/call result: content[0].text is a number, expected a string"},
           CallCase{R"({"content":[{"type":"text","text":"x"}],"isError":"yes"})",
                    "tools/call result: isError is a string, expected a boolean"},
           CallCase{R"({"content":[{"type":"resource","resource":{"uri":5}}]})",
                    "tools/call result: content[0].resource.uri is a number, expected a string"},
       }) {
    CAPTURE(c.result);
    FakeServer fake;
    fake.list(R"([{"name":"echo"}])");
    fake.call_result(c.result);
    ToolRegistry calls;
    REQUIRE(add_mcp_tools(calls, {fake.config}).ok());
    Observation got = call_tool(calls, ctx, "fake__echo", json::object());
    CHECK(got.is_error);
    CHECK(got.text == std::string("MCP fake/echo: ") + c.text);
  }
  // Optional members that are null take their defaults; an odd JSON-RPC error is shown whole.
  FakeServer lenient;
  lenient.list(R"([{"name":"echo","description":null,"inputSchema":null,"annotations":null}])");
  lenient.call_result(R"({"content":[{"type":"text","text":"fine"}],"isError":null})");
  ToolRegistry lenient_reg;
  REQUIRE(add_mcp_tools(lenient_reg, {lenient.config}).ok());
  CHECK(lenient_reg.specs()[0].parameters == json{{"type", "object"}});
  Observation fine = call_tool(lenient_reg, ctx, "fake__echo", json::object());
  CHECK_FALSE(fine.is_error);
  CHECK(fine.text == "fine");

  FakeServer odd_error;
  odd_error.list(R"([{"name":"echo"}])");
  odd_error.config.env.emplace_back("CALL_LINES", R"({"jsonrpc":"2.0","id":@ID@,"error":{"code":"x","message":404}})");
  ToolRegistry odd_reg;
  REQUIRE(add_mcp_tools(odd_reg, {odd_error.config}).ok());
  CHECK(call_tool(odd_reg, ctx, "fake__echo", json::object()).text ==
        R"(MCP fake/echo: tools/call failed: {"code":"x","message":404} (JSON-RPC error 0))");
}

TEST_CASE("MCP: a line that starts like a message but is not JSON fails the request at once, naming the line") {
  TempDir work;
  ToolContext ctx = context_in(work);
  ctx.timeout = std::chrono::seconds(20);
  FakeServer garbage;
  garbage.list(R"([{"name":"echo"}])");
  garbage.config.env.emplace_back("CALL_LINES", "this is not json\n{\"jsonrpc\":\"2.0\",\"id\":@ID@,\"result\":");
  ToolRegistry reg;
  REQUIRE(add_mcp_tools(reg, {garbage.config}).ok());
  Observation got = call_tool(reg, ctx, "fake__echo", json::object());
  CHECK(got.is_error);
  CHECK(got.text ==
        "MCP fake/echo: tools/call: the server wrote a line that is not valid JSON: "
        R"({"jsonrpc":"2.0","id":3,"result":)");
  CHECK(got.seconds < 5);

  // Bytes that are not UTF-8 make the line invalid JSON; the error shows them escaped.
  FakeServer latin1;
  latin1.list(R"([{"name":"echo"}])");
  latin1.call_result("{\"content\":[{\"type\":\"text\",\"text\":\"caf\xe9\"}]}");
  ToolRegistry latin1_reg;
  REQUIRE(add_mcp_tools(latin1_reg, {latin1.config}).ok());
  CHECK(call_tool(latin1_reg, ctx, "fake__echo", json::object()).text ==
        R"(MCP fake/echo: tools/call: the server wrote a line that is not valid JSON: )"
        R"({"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"caf\xe9"}]}})");

  // At start-up the same holds for the handshake.
  FakeServer bad_init;
  bad_init.config.env.emplace_back("INIT_LINES", R"({"jsonrpc":"2.0","id":@ID@,"result":{"protocolVersion": )");
  auto started = std::chrono::steady_clock::now();
  ToolRegistry init_reg;
  CHECK(start_warning(init_reg, {bad_init.config}) ==
        R"(MCP server 'fake' skipped: initialize: the server wrote a line that is not valid JSON: )"
        R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":)");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));

  // Lines that do not start like a message are skipped; a timeout then names the last of them.
  FakeServer chatty;
  chatty.list(R"([{"name":"echo"}])");
  chatty.config.env.emplace_back("CALL_LINES", "Working on it...\n\tstill working");
  ToolRegistry chatty_reg;
  REQUIRE(add_mcp_tools(chatty_reg, {chatty.config}).ok());
  ctx.timeout = std::chrono::seconds(1);
  CHECK(call_tool(chatty_reg, ctx, "fake__echo", json::object()).text ==
        "MCP fake/echo: tools/call timed out after 1 s (the server wrote a line that is not JSON-RPC: still working)");
}

TEST_CASE("MCP approval: read-only refuses tools unless the server marks them readOnlyHint") {
  FakeServer fake;
  ToolRegistry reg;
  REQUIRE(add_mcp_tools(reg, {fake.config}).ok());
  TempDir work;
  ToolContext ctx = context_in(work);
  ctx.approval = ApprovalMode::read_only;
  Observation refused = call_tool(reg, ctx, "fake__bad", json::object());
  CHECK(refused.text == "refused: read-only mode allows no commands (MCP fake/bad {})");
  CHECK(call_tool(reg, ctx, "fake__look_up", json::object()).text == R"({"answer":42})");
}

TEST_CASE("MCP at load: a command that cannot run or a taken tool name fails; a server that fails is skipped") {
  ToolRegistry reg;
  auto missing = add_mcp_tools(reg, {{"ghost", "/nonexistent/mcp-server", {}, {}}});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message == "MCP server 'ghost': cannot run '/nonexistent/mcp-server': No such file or directory");
  // The command is looked up on PATH.
  auto not_on_path = add_mcp_tools(reg, {{"ghost", "no-such-mcp-server-xyz", {}, {}}});
  CHECK(not_on_path.error().message == "MCP server 'ghost': cannot run 'no-such-mcp-server-xyz': No such file or directory");

  // A server that runs but fails is reported (agent-spec: a crashed server is not fatal); the
  // servers after it are still used.
  FakeServer fake;
  auto added = add_mcp_tools(reg, {{"quitter", "bash", {"-c", "echo 'no config' >&2; exit 2"}, {}}, fake.config});
  REQUIRE(added.ok());
  CHECK(*added == std::vector<std::string>{"MCP server 'quitter' skipped: the server exited (exit code 2) during "
                                           "initialize; its stderr ends with: no config"});
  CHECK(reg.specs().size() == 6);
  CHECK(reg.has("fake__show"));
  // A traceback is cut to its last line, so the warning stays one line.
  const std::string traceback =
      R"(printf 'Traceback (most recent call last):\n  File "s.py"\nImportError: no module named foo\n\n' >&2)";
  CHECK(
      start_warning(reg, {{"py", "bash", {"-c", traceback + "; exit 1"}, {}}}) ==
      "MCP server 'py' skipped: the server exited (exit code 1) during initialize; its stderr ends with: ImportError: "
      "no module named foo");
  CHECK(start_warning(reg, {{"mute", "sleep", {"30"}, {}}}, std::chrono::milliseconds(300)) ==
        "MCP server 'mute' skipped: initialize timed out after 0.3 s");
  CHECK(reg.specs().size() == 6);

  auto clash = add_mcp_tools(reg, {fake.config});
  REQUIRE_FALSE(clash.ok());
  CHECK(clash.error().message == "MCP server 'fake': tool name 'fake__show' is already taken");
}

TEST_CASE("MCP configuration: the mcpServers format, with clear errors") {
  TempDir dir;
  write_text(dir / "mcp.json", R"({"mcpServers": {
      "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=UTC"]},
      "files": {"command": "npx", "env": {"ROOT": "/srv"}}}})");
  auto servers = load_mcp_config(dir / "mcp.json");
  REQUIRE(servers.ok());
  CHECK(*servers == std::vector<McpServerConfig>{{"time", "uvx", {"mcp-server-time", "--local-timezone=UTC"}, {}},
                                                 {"files", "npx", {}, {{"ROOT", "/srv"}}}});
  auto error_of = [](const char* text) { return parse_mcp_config(json::parse(text), "cfg.json").error().message; };
  CHECK(error_of(R"({"servers": {}})") == "cfg.json: expected an object with an \"mcpServers\" object");
  CHECK(error_of(R"({"mcpServers": {"a": {"args": []}}})") == "cfg.json: mcpServers.a: missing \"command\"");
  CHECK(error_of(R"({"mcpServers": {"a": {"url": "http://x"}}})") ==
        "cfg.json: mcpServers.a: only stdio servers (\"command\") are supported, not \"url\"");
  CHECK(error_of(R"({"mcpServers": {"a": {"command": "x", "args": "y"}}})") == "cfg.json: mcpServers.a.args: expected an array of strings");
  CHECK(error_of(R"({"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}})") == "cfg.json: mcpServers.a.env.K: expected a string");
  write_text(dir / "broken.json", "{");
  CHECK(load_mcp_config(dir / "broken.json").error().message == (dir / "broken.json").string() + ": not valid JSON");
}
