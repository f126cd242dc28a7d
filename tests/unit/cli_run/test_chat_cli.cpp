// `dsagent chat` end to end with stdin from a pipe: two messages, /save, and --resume.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/api/types.hpp"
#include "tests/http_test_server.hpp"
#include "tests/test_support.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

HttpTestServer::Response answer(const std::string& text, const std::string& reasoning) {
  auto ev = [](const json& delta, const char* finish) {
    json choice{{"index", 0}, {"delta", delta}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
    return "data: " + json{{"id", "c"}, {"choices", json::array({choice})}}.dump() + "\n\n";
  };
  return HttpTestServer::sse({ev({{"reasoning_content", reasoning}}, nullptr), ev({{"content", text}}, nullptr),
                              ev(json::object(), "stop"), "data: [DONE]\n\n"});
}

std::string chat_cmd(const TempDir& dir, const std::string& url, const std::string& extra) {
  return "cd '" + dir.path().string() + "' && env -u DEEPSEEK_API_KEY -u OPENAI_API_KEY XDG_CONFIG_HOME=cfg '" +
         dsagent_binary().string() + "' chat --api " + url + " --api-model m " + extra;
}

}  // namespace

TEST_CASE("dsagent chat: messages from a pipe, streamed answers, /save and --resume") {
  TempDir dir("dsa-chat");
  HttpTestServer server({answer("first answer", "think 1"), answer("second answer", "think 2"),
                         answer("resumed answer", "think 3")});
  write_text(dir / "in.txt", "hello\n/save s.json\nagain\n/exit\nnot sent\n");
  auto r = run_command(chat_cmd(dir, server.url(), "< in.txt 2>/dev/null"));
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("first answer") != std::string::npos);
  CHECK(r.output.find("second answer") != std::string::npos);
  CHECK(r.output.find("think 1") != std::string::npos);  // thinking is streamed too
  REQUIRE(server.requests().size() == 2);
  // The second request: the first answer without its reasoning (a new user message came).
  json msgs = json::parse(server.requests()[1].body)["messages"];
  REQUIRE(msgs.size() == 4);
  CHECK(msgs[2]["content"] == "first answer");
  CHECK_FALSE(msgs[2].contains("reasoning_content"));
  CHECK(msgs[3]["content"] == "again");

  // The saved session holds system, hello, first answer; resuming continues from it.
  write_text(dir / "in2.txt", "continue\n");
  auto r2 = run_command(chat_cmd(dir, server.url(), "--resume s.json < in2.txt 2>/dev/null"));
  CHECK(r2.exit_code == 0);
  CHECK(r2.output.find("resumed answer") != std::string::npos);
  REQUIRE(server.requests().size() == 3);
  json resumed = json::parse(server.requests()[2].body)["messages"];
  REQUIRE(resumed.size() == 4);
  CHECK(resumed[1]["content"] == "hello");
  CHECK(resumed[2]["content"] == "first answer");
  CHECK(resumed[3]["content"] == "continue");
}

TEST_CASE("dsagent chat: ask approvals read the answer from the next input line") {
  TempDir dir("dsa-chat");
  auto ev = [](const json& delta, const char* finish) {
    json choice{{"index", 0}, {"delta", delta}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
    return "data: " + json{{"id", "c"}, {"choices", json::array({choice})}}.dump() + "\n\n";
  };
  auto write_calls = [&](const std::vector<std::string>& paths) {
    json calls = json::array();
    for (const std::string& path : paths) {
      const int i = int(calls.size());
      calls.push_back(
          {{"index", i},
           {"id", "x" + std::to_string(i)},
           {"type", "function"},
           {"function", {{"name", "write_file"}, {"arguments", json{{"path", path}, {"content", "1"}}.dump()}}}});
    }
    return HttpTestServer::sse(
        {ev({{"tool_calls", calls}}, nullptr), ev(json::object(), "tool_calls"), "data: [DONE]\n\n"});
  };
  HttpTestServer server({write_calls({"yes.txt"}), answer("done 1", ""), write_calls({"no.txt"}), answer("done 2", ""),
                         write_calls({"kept.txt", "also.txt"}), answer("done 3", "")});
  // " Yes " and "N" answer; "/save s.json" is not an answer: both writes of that turn are refused
  // and the line runs as a command after it.
  write_text(dir / "in.txt", "write yes\n Yes \nwrite no\nN\nwrite two\n/save s.json\n");
  auto r = run_command(chat_cmd(dir, server.url(), "--approval ask < in.txt 2>&1"));
  CAPTURE(r.output);
  CHECK(r.exit_code == 0);
  CHECK(std::filesystem::exists(dir / "yes.txt"));
  CHECK_FALSE(std::filesystem::exists(dir / "no.txt"));
  CHECK_FALSE(std::filesystem::exists(dir / "kept.txt"));
  CHECK_FALSE(std::filesystem::exists(dir / "also.txt"));
  CHECK(r.output.find("(not an answer: refused; the line is kept as your next input)") != std::string::npos);
  CHECK(r.output.find("(saved to s.json)") != std::string::npos);
  REQUIRE(std::filesystem::exists(dir / "s.json"));
  CHECK(server.requests().size() == 6);
}

TEST_CASE("dsagent chat --resume: read before the trajectory is opened, checked, and given this run's system prompt") {
  TempDir dir("dsa-chat-resume");
  HttpTestServer server({answer("one", "t1"), answer("two", "t2")});
  // A saved session with another system prompt, then commands with spaces and a Windows line end.
  write_text(dir / "s.json", json{{"messages", json::array({{{"role", "system"}, {"content", "old prompt"}},
                                                            {{"role", "user"}, {"content", "hi"}},
                                                            {{"role", "assistant"}, {"content", "hello"}}})}}
                                 .dump());
  write_text(dir / "run.json", "{\"kept\": true}\n");
  // A resume that fails leaves the trajectory file as it was; so does one naming it.
  auto missing = run_command(chat_cmd(dir, server.url(), "--resume nope.json --trajectory run.json < /dev/null 2>&1"));
  CHECK(missing.exit_code == 1);
  auto same = run_command(chat_cmd(dir, server.url(), "--resume s.json --trajectory s.json < /dev/null 2>&1"));
  CHECK(same.exit_code == 1);
  CHECK(same.output.find("would overwrite the conversation to resume") != std::string::npos);
  CHECK(read_text(dir / "run.json") == "{\"kept\": true}\n");
  CHECK(json::parse(read_text(dir / "s.json"))["messages"].size() == 3);

  write_text(dir / "in.txt", "next\r\n  /save  out.json  \r\n/save run.json\n/exit \nnot sent\n");
  auto r = run_command(chat_cmd(dir, server.url(), "--resume s.json --trajectory run.json < in.txt 2>&1"));
  CHECK(r.exit_code == 0);
  REQUIRE(server.requests().size() == 1);
  json msgs = json::parse(server.requests()[0].body)["messages"];
  REQUIRE(msgs.size() == 4);
  CHECK(msgs[0]["content"] != "old prompt");  // this run's tools and work dir
  CHECK(msgs[3]["content"] == "next");
  CHECK(json::parse(read_text(dir / "out.json"))["messages"].size() == 5);
  CHECK(r.output.find("is the --trajectory file; save to another") != std::string::npos);
  CHECK(json::parse(read_text(dir / "run.json")).contains("steps"));  // still the trajectory

  // A tool result that answers no call is refused at load, naming it.
  write_text(dir / "orphan.json",
             R"({"messages":[{"role":"system","content":"s"},{"role":"tool","content":"x","tool_call_id":"zz"}]})");
  auto orphan = run_command(chat_cmd(dir, server.url(), "--resume orphan.json < /dev/null 2>&1"));
  CHECK(orphan.exit_code == 1);
  CHECK(orphan.output.find("a tool result for 'zz', which the assistant message before it did not call") !=
        std::string::npos);
}
