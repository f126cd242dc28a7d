// RemoteLlm against a misbehaving loopback server: retries (status, Retry-After, cut streams, idle
// servers, refused connections), errors that are not retried, malformed chunks, key redaction.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>

#include "engine/remote/remote_llm.hpp"
#include "tests/unit/remote/remote_test_util.hpp"

using namespace dsa;
using namespace dsa::test;
using Server = HttpTestServer;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::unique_ptr<RemoteLlm> make_llm(const RemoteConfig& c) {
  auto r = RemoteLlm::create(c);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return std::move(r).value();
}

std::vector<Message> chat() { return {Message{.role = Role::user, .content = "Hi"}}; }

Server::Response status_response(int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  Server::Response r = Server::json_body(status, std::move(body));
  for (auto& h : headers) r.headers.push_back(std::move(h));
  return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("429 with Retry-After waits as the server asks, then succeeds") {
  Server server({status_response(429, R"({"error": {"message": "Rate limit reached"}})", {{"Retry-After", "1"}}),
                 Server::sse(hello_events())});
  RemoteConfig c = test_config(server.url());
  c.retry_base_ms = 1;  // the backoff alone would wait at most 1 ms
  c.retry_max_ms = 5000;
  auto llm = make_llm(c);
  auto start = steady_clock::now();
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  auto elapsed = steady_clock::now() - start;
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));
  CHECK(turn->content == "Hello");
  CHECK(server.requests().size() == 2);
  CHECK(elapsed >= milliseconds(950));
  CHECK(elapsed < milliseconds(3000));
  auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "HTTP 429"));
  CHECK(contains(warnings[0], "Rate limit reached"));
  CHECK(contains(warnings[0], "retrying in 1000 ms"));
}

TEST_CASE("a Retry-After longer than retry_max_ms is capped") {
  Server server({status_response(429, "slow down", {{"Retry-After", "3600"}}), Server::sse(hello_events())});
  RemoteConfig c = test_config(server.url());
  c.retry_max_ms = 30;
  auto llm = make_llm(c);
  auto start = steady_clock::now();
  REQUIRE(llm->generate(chat(), {}, GenOptions{}, nullptr).ok());
  CHECK(steady_clock::now() - start < milliseconds(1000));
  auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "retrying in 30 ms"));
}

TEST_CASE("503 twice, then success: the same request is sent three times") {
  Server server({status_response(503, R"({"error": {"message": "Service Unavailable"}})"),
                 status_response(503, R"({"error": {"message": "Service Unavailable"}})"), Server::sse(hello_events())});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn->content == "Hello");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[1].body == reqs[0].body);
  CHECK(reqs[2].body == reqs[0].body);
  auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 2);
  CHECK(contains(warnings[0], "attempt 1 failed: HTTP 503"));
  CHECK(contains(warnings[1], "attempt 2 failed: HTTP 503"));
}

TEST_CASE("a stream cut in the middle is retried and the turn holds only the last attempt") {
  Server::Response cut = Server::sse({delta_event({{"reasoning_content", "first try "}}),
                                      delta_event({{"content", "Partial ans"}})});
  cut.cut = true;
  Server server({cut, Server::sse(hello_events())});
  auto llm = make_llm(test_config(server.url()));
  RecordingSink sink;
  auto turn = llm->generate(chat(), {}, GenOptions{}, &sink);
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));
  CHECK(turn_json(*turn) == json::parse(R"({"reasoning": "", "content": "Hello", "tool_calls": [],
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0},
    "finish": "stop", "format_error": ""})"));
  // The sink showed the cut attempt live, then hears that it is dropped before the next one streams.
  REQUIRE(sink.events.size() == 5);
  CHECK(std::vector<std::string>(sink.events.begin(), sink.events.begin() + 2) ==
        std::vector<std::string>{"reasoning:first try ", "content:Partial ans"});
  CHECK(sink.events[2].starts_with("retry:attempt 1 failed: stream from "));
  CHECK(contains(sink.events[2], "ended before its finish"));
  CHECK(std::vector<std::string>(sink.events.begin() + 3, sink.events.end()) ==
        std::vector<std::string>{"content:Hel", "content:lo"});
  CHECK(server.requests().size() == 2);
  CHECK(llm->take_warnings().empty());  // said to the sink instead
}

TEST_CASE("a stream cut after its finish_reason is whole and not retried") {
  Server::Response r = Server::sse({delta_event({{"content", "done"}}, "stop")});
  r.cut = true;
  Server server({r});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn->content == "done");
  CHECK(server.requests().size() == 1);
}

TEST_CASE("DeepSeek's insufficient_system_resource finish is retried") {
  Server server({Server::sse({delta_event({{"content", "half"}}, "insufficient_system_resource"), kDone}),
                 Server::sse(hello_events())});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn->content == "Hello");
  CHECK(server.requests().size() == 2);
}

TEST_CASE("a malformed chunk in a stream that finishes makes the turn be asked for again") {
  // Its text is lost: "The answer is 1" + "4." would pass for a whole answer.
  Server server({Server::sse({delta_event({{"content", "The answer is 1"}}),
                              "data: {\"choices\": [{\"delta\": {\"content\": \"23\"}}]\n\n",
                              delta_event({{"content", "4."}}, "stop"), kDone}),
                 Server::sse(hello_events())});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn->content == "Hello");
  CHECK(server.requests().size() == 2);
  const auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(contains(warnings[0], "a malformed chunk in the stream from " + server.url() +
                                  "/v1/chat/completions: {\"choices\": [{\"delta\": {\"content\": \"23\"}}]"));
}

TEST_CASE("a body that is neither a stream nor a completion is reported on one line") {
  Server::Response html = status_response(200, "<html>\n<body>\nBad gateway\n</body>\n</html>\n");
  Server server({html});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(turn.ok());
  CHECK(turn.error().message.find('\n') == std::string::npos);
  CHECK(contains(turn.error().message, "neither an event stream nor a chat completion: <html> <body> Bad gateway"));
}

TEST_CASE("a 400 is one line with the server's message and is not retried") {
  Server server({status_response(400, R"({"error": {"message": "Invalid 'messages[2]': tool_call_id\nmissing",
                                          "type": "invalid_request_error"}})")});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(turn.ok());
  CHECK(turn.error().message ==
        "HTTP 400 from " + server.url() + "/v1/chat/completions: Invalid 'messages[2]': tool_call_id missing");
  CHECK(server.requests().size() == 1);
  CHECK(llm->take_warnings().empty());
}

TEST_CASE("a prompt over the server's window is a recognisable error, not retried") {
  Server server({status_response(400, R"({"object": "error", "message": "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens.", "code": 400})")});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(turn.ok());
  CHECK(turn.error().message ==
        "context_length_exceeded: This model's maximum context length is 131072 tokens. However, you requested "
        "140000 tokens.");
  CHECK(server.requests().size() == 1);
}

TEST_CASE("a server silent past idle_timeout is retried, then the last error is returned") {
  Server::Response stall_mid = Server::sse({delta_event({{"content", "x"}})});
  stall_mid.chunks.push_back({delta_event({{"content", "y"}}, "stop"), 5000});
  Server::Response stall_start = Server::sse(hello_events());
  stall_start.chunks[0].delay_ms = 5000;
  Server server({stall_mid, stall_start, stall_start});
  RemoteConfig c = test_config(server.url());
  c.idle_timeout_ms = 150;
  c.max_retries = 2;
  auto llm = make_llm(c);
  auto start = steady_clock::now();
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  auto elapsed = steady_clock::now() - start;
  REQUIRE_FALSE(turn.ok());
  CHECK(turn.error().message == "request to " + server.url() +
                                    "/v1/chat/completions failed: no data received for 150 ms (gave up after 3 attempts)");
  CHECK(server.requests().size() == 3);
  CHECK(elapsed >= milliseconds(450));
  CHECK(elapsed < milliseconds(2000));
  auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 2);
  CHECK(contains(warnings[0], "ended before its finish (no data received for 150 ms)"));
}

TEST_CASE("a refused connection is retried, then reported") {
  int port;
  {
    Server closed({});
    port = closed.port();
  }  // the port is free again and nothing listens on it
  RemoteConfig c = test_config("http://127.0.0.1:" + std::to_string(port));
  c.max_retries = 1;
  auto llm = make_llm(c);
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(turn.ok());
  CHECK(contains(turn.error().message, "request to http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions failed: "));
  CHECK(contains(turn.error().message, "(gave up after 2 attempts)"));
  CHECK(llm->take_warnings().size() == 1);
}

TEST_CASE("the API key never appears in errors or warnings, even when a server echoes it") {
  const std::string key = kTestKey;
  Server server({status_response(500, "upstream rejected Authorization: Bearer " + key),
                 Server::sse({"data: {broken " + key + "\n\n", delta_event({{"content", "ok"}}, "stop"), kDone}),
                 Server::sse({delta_event({{"content", "ok"}}, "stop"), kDone}),
                 status_response(401, R"({"error": {"message": "Incorrect API key provided: )" + key + R"("}})")});
  auto llm = make_llm(test_config(server.url()));
  auto turn = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(server.requests()[0].header("authorization") == "Bearer " + key);  // it is sent, only never shown
  auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 2);
  CHECK(contains(warnings[0], "upstream rejected Authorization: Bearer [api key]"));
  CHECK(contains(warnings[1],
                 "a malformed chunk in the stream from " + server.url() + "/v1/chat/completions: {broken [api key]"));

  auto failed = llm->generate(chat(), {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().message == "HTTP 401 from " + server.url() +
                                      "/v1/chat/completions: Incorrect API key provided: [api key] (check the key in " +
                                      kTestKeyEnv + ")");
  for (const auto& w : warnings) CHECK_FALSE(contains(w, key));
  CHECK_FALSE(contains(failed.error().message, key));
}

TEST_CASE("a 422 naming the model's completion cap: sent again with that max_tokens, kept for later requests") {
  Server server({status_response(422, R"({"error": {"message": "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"}})"),
                 Server::sse(hello_events()), Server::sse(hello_events())});
  auto llm = make_llm(test_config(server.url()));
  GenOptions g;
  g.max_tokens = 32768;
  auto turn = llm->generate(chat(), {}, g, nullptr);
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));
  CHECK(turn->content == "Hello");
  REQUIRE(llm->generate(chat(), {}, g, nullptr).ok());
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(json::parse(reqs[0].body)["max_tokens"] == 32768);
  CHECK(json::parse(reqs[1].body)["max_tokens"] == 8192);
  CHECK(json::parse(reqs[2].body)["max_tokens"] == 8192);  // no second refusal
  auto warnings = llm->take_warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] == "the server takes at most 8192 completion tokens; asking for that many");
}

TEST_CASE("a 400 naming the room a prompt leaves: that request is sent again; a prompt that fills the context is reported") {
  const std::string room = R"({"error": {"message": "This model's maximum context length is 32768 tokens. However, you requested 33000 tokens (232 in the messages, 32768 in the completion)."}})";
  const std::string full = R"({"error": {"message": "This model's maximum context length is 32768 tokens. However, you requested 33000 tokens (32500 in the messages, 500 in the completion)."}})";
  Server server({status_response(400, room), Server::sse(hello_events()), status_response(400, full)});
  auto llm = make_llm(test_config(server.url()));
  GenOptions g;
  g.max_tokens = 32768;
  auto turn = llm->generate(chat(), {}, g, nullptr);
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(json::parse(reqs[1].body)["max_tokens"] == 32768 - 232);
  auto overflow = llm->generate(chat(), {}, g, nullptr);
  REQUIRE_FALSE(overflow.ok());
  CHECK(overflow.error().message.rfind("context_length_exceeded: ", 0) == 0);
  CHECK(server.requests().size() == 3);
  CHECK(json::parse(server.requests()[2].body)["max_tokens"] == 32768);  // room is per prompt, not kept
}
