// RemoteLlm against the loopback server: streamed turns, the request it sends, usage, token counts.
#include <doctest/doctest.h>

#include "engine/remote/remote_llm.hpp"
#include "tests/unit/remote/remote_test_util.hpp"

using namespace dsa;
using namespace dsa::test;
using Server = HttpTestServer;

namespace {

std::unique_ptr<RemoteLlm> make_llm(const RemoteConfig& c) {
  auto r = RemoteLlm::create(c);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return std::move(r).value();
}

std::vector<Message> short_chat() {
  return {Message{.role = Role::system, .content = "You are terse."}, Message{.role = Role::user, .content = "Hi"}};
}

}  // namespace

TEST_CASE("a streamed turn with reasoning, content and two fragmented tool calls") {
  std::vector<Server::Chunk> chunks;
  for (std::string e : {
           delta_event({{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "Let me "}}),
           delta_event({{"reasoning_content", "look."}}),
           delta_event({{"content", "Checking "}}),
           delta_event({{"content", "both."}}),
           delta_event({{"tool_calls", {{{"index", 0}, {"id", "call_a"}, {"type", "function"},
                                          {"function", {{"name", "read_file"}, {"arguments", "{\"pa"}}}}}}}),
           delta_event({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", "th\": \"a.txt\"}"}}}}}}}),
           delta_event({{"tool_calls", {{{"index", 1}, {"id", "call_b"}, {"type", "function"},
                                          {"function", {{"name", "shell"}, {"arguments", ""}}}}}}}),
           delta_event({{"tool_calls", {{{"index", 1}, {"function", {{"arguments", "{\"cmd\": "}}}}}}}),
           delta_event({{"tool_calls", {{{"index", 1}, {"function", {{"arguments", "\"ls -l\"}"}}}}}}}),
           delta_event(json::object(), "tool_calls"),
           usage_event({{"prompt_tokens", 120},
                        {"completion_tokens", 40},
                        {"prompt_tokens_details", {{"cached_tokens", 64}}},
                        {"completion_tokens_details", {{"reasoning_tokens", 12}}}}),
           kDone}) {
    // Each event is split in two pieces sent apart, so the decoder sees events cut anywhere.
    size_t half = e.size() / 2;
    chunks.push_back({e.substr(0, half), 2});
    chunks.push_back({e.substr(half), 2});
  }
  Server server({Server::Response{.status = 200, .headers = {{"Content-Type", "text/event-stream"}}, .chunks = chunks}});
  auto llm = make_llm(test_config(server.url()));
  RecordingSink sink;
  auto turn = llm->generate(short_chat(), {}, GenOptions{}, &sink);
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));

  CHECK(turn_json(*turn) == json::parse(R"({
    "reasoning": "Let me look.", "content": "Checking both.",
    "tool_calls": [
      {"id": "call_a", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"a.txt\"}"}},
      {"id": "call_b", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\": \"ls -l\"}"}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 40, "cached_tokens": 64, "reasoning_tokens": 12},
    "finish": "tool_calls", "format_error": ""})"));
  CHECK(sink.events == std::vector<std::string>{"reasoning:Let me ", "reasoning:look.", "content:Checking ",
                                                "content:both.", "tool:call_a read_file {\"path\": \"a.txt\"}",
                                                "tool:call_b shell {\"cmd\": \"ls -l\"}"});
  CHECK(llm->take_warnings().empty());
}

TEST_CASE("the request body carries messages, reasoning on tool-call turns, tools and thinking flags") {
  Server server({Server::sse(hello_events())});
  auto llm = make_llm(test_config(server.url() + "/v1/"));
  std::vector<Message> messages{
      Message{.role = Role::system, .content = "sys"},
      Message{.role = Role::user, .content = "list files"},
      Message{.role = Role::assistant, .content = "", .reasoning_content = "need ls",
              .tool_calls = {{"c1", "shell", "{\"cmd\":\"ls\"}"}}},
      Message{.role = Role::tool, .content = "a.txt", .tool_call_id = "c1"},
      Message{.role = Role::assistant, .content = "", .tool_calls = {{"c2", "shell", "{\"cmd\":\"wc a.txt\"}"}}},
      Message{.role = Role::tool, .content = "3 a.txt", .tool_call_id = "c2"},
      Message{.role = Role::assistant, .content = "One file.", .reasoning_content = "done"},
      Message{.role = Role::user, .content = "thanks"},
  };
  std::vector<ToolSpec> tools{{"shell", "Run a command", json::parse(R"({"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"]})")}};
  GenOptions opts{.thinking = true, .temperature = 0.6, .top_p = 0.95, .top_k = 0, .seed = 7, .max_tokens = 1000,
                  .stop = {"</end>"}};
  auto turn = llm->generate(messages, tools, opts, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn->content == "Hello");

  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].path == "/v1/chat/completions");
  CHECK(reqs[0].header("authorization") == std::string("Bearer ") + kTestKey);
  CHECK(reqs[0].header("content-type") == "application/json");
  CHECK(json::parse(reqs[0].body) == json::parse(R"({
    "model": "deepseek-chat",
    "messages": [
      {"role": "system", "content": "sys"},
      {"role": "user", "content": "list files"},
      {"role": "assistant", "content": "", "reasoning_content": "need ls",
       "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"ls\"}"}}]},
      {"role": "tool", "content": "a.txt", "tool_call_id": "c1"},
      {"role": "assistant", "content": "", "reasoning_content": "",
       "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"wc a.txt\"}"}}]},
      {"role": "tool", "content": "3 a.txt", "tool_call_id": "c2"},
      {"role": "assistant", "content": "One file."},
      {"role": "user", "content": "thanks"}],
    "tools": [{"type": "function", "function": {"name": "shell", "description": "Run a command",
               "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}}],
    "stream": true, "stream_options": {"include_usage": true},
    "temperature": 0.6, "top_p": 0.95, "max_tokens": 1000, "seed": 7, "stop": ["</end>"],
    "thinking": {"type": "enabled"}, "chat_template_kwargs": {"thinking": true}})"));
}

TEST_CASE("thinking dialects send only their own field") {
  Server server({Server::sse(hello_events()), Server::sse(hello_events())});
  RemoteConfig c = test_config(server.url());
  c.thinking_dialect = ThinkingDialect::deepseek;
  REQUIRE(make_llm(c)->generate(short_chat(), {}, GenOptions{.thinking = false}, nullptr).ok());
  c.thinking_dialect = ThinkingDialect::chat_template;
  REQUIRE(make_llm(c)->generate(short_chat(), {}, GenOptions{.thinking = false}, nullptr).ok());
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  json a = json::parse(reqs[0].body), b = json::parse(reqs[1].body);
  CHECK(a["thinking"] == json{{"type", "disabled"}});
  CHECK_FALSE(a.contains("chat_template_kwargs"));
  CHECK(b["chat_template_kwargs"] == json{{"thinking", false}});
  CHECK_FALSE(b.contains("thinking"));
}

TEST_CASE("vLLM's `reasoning` field and DeepSeek's prompt_cache_hit_tokens are understood") {
  Server server({Server::sse({delta_event({{"reasoning", "hmm"}}), delta_event({{"content", "ok"}}, "stop"),
                              usage_event({{"prompt_tokens", 50}, {"completion_tokens", 5},
                                           {"prompt_cache_hit_tokens", 32}, {"prompt_cache_miss_tokens", 18}}),
                              kDone})});
  auto turn = make_llm(test_config(server.url()))->generate(short_chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn_json(*turn) == json::parse(R"({"reasoning": "hmm", "content": "ok", "tool_calls": [],
    "usage": {"prompt_tokens": 50, "completion_tokens": 5, "cached_tokens": 32, "reasoning_tokens": 0},
    "finish": "stop", "format_error": ""})"));
}

TEST_CASE("a server that ignores stream answers with one JSON completion") {
  Server server({Server::json_body(200, R"({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
    "message": {"role": "assistant", "content": "", "reasoning_content": "think",
      "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "grep", "arguments": {"pattern": "x"}}}]},
    "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})")});
  RecordingSink sink;
  auto turn = make_llm(test_config(server.url()))->generate(short_chat(), {}, GenOptions{}, &sink);
  REQUIRE(turn.ok());
  CHECK(turn_json(*turn) == json::parse(R"({"reasoning": "think", "content": "",
    "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "grep", "arguments": "{\"pattern\":\"x\"}"}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "cached_tokens": 0, "reasoning_tokens": 0},
    "finish": "tool_calls", "format_error": ""})"));
  CHECK(sink.events == std::vector<std::string>{"reasoning:think", "tool:t1 grep {\"pattern\":\"x\"}"});
}

TEST_CASE("should_stop ends the stream early with what arrived and finish = stop") {
  std::vector<std::string> events{delta_event({{"content", "one "}})};
  for (int i = 0; i < 50; ++i) events.push_back(delta_event({{"content", "more "}}));
  events.push_back(delta_event(json::object(), "stop"));
  events.push_back(kDone);
  Server server({Server::sse(events, 20)});
  RecordingSink sink;
  sink.stop_after_content = 2;
  auto start = std::chrono::steady_clock::now();
  auto turn = make_llm(test_config(server.url()))->generate(short_chat(), {}, GenOptions{}, &sink);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE(turn.ok());
  CHECK(turn->content == "one more ");
  CHECK(turn->finish == FinishReason::stop);
  CHECK(elapsed < std::chrono::milliseconds(500));  // the full stream takes over a second
}

TEST_CASE("count_tokens is an estimate that takes the scale of the server's prompt_tokens") {
  auto answer = [](int64_t prompt_tokens) {
    return Server::sse({delta_event({{"content", "ok"}}, "stop"),
                        usage_event({{"prompt_tokens", prompt_tokens}, {"completion_tokens", 1}}), kDone});
  };
  Server server({answer(1000), answer(2000)});
  auto llm = make_llm(test_config(server.url()));
  CHECK_FALSE(llm->info().exact_token_count);
  auto chat = short_chat();
  chat[1].content = std::string(700, 'x');
  int64_t before = llm->count_tokens(chat, {}, true);
  CHECK(before > 200);  // 700+ bytes at ~3.5 bytes per token
  CHECK(before < 260);
  REQUIRE(llm->generate(chat, {}, GenOptions{}, nullptr).ok());
  CHECK(llm->count_tokens(chat, {}, true) == 1000);
  REQUIRE(llm->generate(chat, {}, GenOptions{}, nullptr).ok());
  CHECK(llm->count_tokens(chat, {}, true) == 1500);  // moves halfway toward each new report
}

TEST_CASE("count_tokens follows thinking retention") {
  auto llm = make_llm(test_config("http://127.0.0.1:1"));
  std::string r(350, 'r');
  std::vector<Message> before_user{Message{.role = Role::user, .content = "q"},
                                   Message{.role = Role::assistant, .content = "a", .reasoning_content = r},
                                   Message{.role = Role::user, .content = "q2"}};
  std::vector<Message> after_user{Message{.role = Role::user, .content = "q"},
                                  Message{.role = Role::assistant, .content = "a", .reasoning_content = r,
                                          .tool_calls = {{"c", "f", "{}"}}},
                                  Message{.role = Role::tool, .content = "x", .tool_call_id = "c"}};
  auto without = [](std::vector<Message> m) {
    for (auto& x : m) x.reasoning_content.reset();
    return m;
  };
  // Reasoning before the last user message is dropped; after it, it counts (350 bytes = 100 tokens).
  CHECK(llm->count_tokens(before_user, {}, true) == llm->count_tokens(without(before_user), {}, true));
  CHECK(llm->count_tokens(after_user, {}, true) == llm->count_tokens(without(after_user), {}, true) + 100);
  CHECK(llm->count_tokens(after_user, {}, false) == llm->count_tokens(without(after_user), {}, false));
}

TEST_CASE("create rejects bad URLs, a missing model and an unset key variable") {
  RemoteConfig c = test_config("ftp://example.com");
  CHECK(RemoteLlm::create(c).error().message == "API URL 'ftp://example.com' must start with http:// or https://");
  c = test_config("http://127.0.0.1:1");
  c.model = "";
  CHECK(RemoteLlm::create(c).error().message == "no model name given for the API at http://127.0.0.1:1");
  c = test_config("http://127.0.0.1:1");
  c.api_key_env = "DSA_REMOTE_TEST_UNSET_VARIABLE";
  ::unsetenv("DSA_REMOTE_TEST_UNSET_VARIABLE");
  CHECK(RemoteLlm::create(c).error().message == "API key variable DSA_REMOTE_TEST_UNSET_VARIABLE is not set");
  c = test_config("http://127.0.0.1:1");
  c.context_window = 131072;
  CHECK(make_llm(c)->info().context_window == 131072);
}

TEST_CASE("tool-call arguments that are not a JSON object are kept and reported as a format error") {
  Server server({Server::sse({
      delta_event({{"tool_calls", {{{"index", 0}, {"id", "c_ok"}, {"function", {{"name", "ls"}, {"arguments", "{}"}}}}}}}),
      delta_event({{"tool_calls", {{{"index", 1}, {"id", "c_bad"},
                                    {"function", {{"name", "shell"}, {"arguments", "{\"cmd\": \"ls"}}}}}}}),
      delta_event({{"tool_calls", {{{"index", 2}, {"id", "c_arr"}, {"function", {{"name", "grep"}, {"arguments", "[1]"}}}}}}}),
      delta_event(json::object(), "tool_calls"), kDone})});
  auto turn = make_llm(test_config(server.url()))->generate(short_chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn_json(*turn) == json::parse(R"({"reasoning": "", "content": "",
    "tool_calls": [
      {"id": "c_ok", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
      {"id": "c_bad", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\": \"ls"}},
      {"id": "c_arr", "type": "function", "function": {"name": "grep", "arguments": "[1]"}}],
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0},
    "finish": "tool_calls",
    "format_error": "malformed reply: the arguments of tool call c_bad (shell) are not a JSON object: {\"cmd\": \"ls; the arguments of tool call c_arr (grep) are not a JSON object: [1]"})"));
}

TEST_CASE("finish reasons map to the turn's finish") {
  auto answer = [](const char* reason) {
    return Server::sse({delta_event({{"content", "x"}}, reason), kDone});
  };
  Server server({answer("stop"), answer("length"), answer("content_filter"), answer("tool_calls")});
  auto llm = make_llm(test_config(server.url()));
  std::vector<FinishReason> got;
  for (int i = 0; i < 4; ++i) {
    auto turn = llm->generate(short_chat(), {}, GenOptions{}, nullptr);
    REQUIRE(turn.ok());
    got.push_back(turn->finish);
  }
  // "tool_calls" without any call: nothing to run, so the turn ended like any other answer.
  CHECK(got == std::vector<FinishReason>{FinishReason::stop, FinishReason::length, FinishReason::error,
                                         FinishReason::stop});
}

TEST_CASE("a DSML block a server passes through as content becomes the turn's tool calls") {
  // A server running V3.2 without its tool-call parser streams the model's text as it is.
  const std::string block =
      "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"shell\">\n<｜DSML｜parameter name=\"command\" "
      "string=\"true\">ls -la</｜DSML｜parameter>\n<｜DSML｜parameter name=\"timeout\" "
      "string=\"false\">5</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>";
  Server server({Server::sse({delta_event({{"content", "Let me look.\n\n" + block.substr(0, 40)}}),
                              delta_event({{"content", block.substr(40)}}, "stop"), kDone})});
  auto llm = make_llm(test_config(server.url()));
  RecordingSink sink;
  auto turn = llm->generate({Message{.role = Role::user, .content = "Hi"}}, {}, GenOptions{}, &sink);
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));
  CHECK(turn->content == "Let me look.");
  REQUIRE(turn->tool_calls.size() == 1);
  CHECK(turn->tool_calls[0].name == "shell");
  CHECK(json::parse(turn->tool_calls[0].arguments) == json{{"command", "ls -la"}, {"timeout", 5}});
  CHECK(turn->finish == FinishReason::tool_calls);
  CHECK_FALSE(turn->format_error);
  CHECK(sink.events.back() == "tool:call_0 shell " + turn->tool_calls[0].arguments);
}
