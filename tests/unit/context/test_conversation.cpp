// The conversation: rounds, the thinking-retention rule on exact message lists, save/load.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include "context/atomic_file.hpp"
#include "context/conversation.hpp"
#include "tests/test_support.hpp"

using namespace dsa;

namespace {

AssistantTurn call_turn(const std::string& reasoning, const std::string& call_id) {
  AssistantTurn t;
  t.reasoning = reasoning;
  t.tool_calls.push_back(ToolCall{call_id, "shell", R"({"cmd":"ls"})"});
  return t;
}

Message assistant(std::optional<std::string> reasoning, const std::string& call_id, const std::string& content = "") {
  Message m{.role = Role::assistant, .content = content, .reasoning_content = std::move(reasoning)};
  if (!call_id.empty()) m.tool_calls.push_back(ToolCall{call_id, "shell", R"({"cmd":"ls"})"});
  return m;
}
Message tool(const std::string& id, const std::string& content) {
  return Message{.role = Role::tool, .content = content, .tool_call_id = id};
}
Message user(const std::string& content) { return Message{.role = Role::user, .content = content}; }
Message system_msg(const std::string& content) { return Message{.role = Role::system, .content = content}; }

json as_json(const std::vector<Message>& ms) {
  json j = json::array();
  for (const auto& m : ms) j.push_back(to_json(m));
  return j;
}

// sys, task, two rounds with reasoning (and one round with two calls).
Conversation first_user_turn() {
  Conversation c;
  c.append_system("sys");
  c.append_user("task");
  c.append_assistant(call_turn("r1", "c1"));
  c.append_tool_result("c1", "out1");
  AssistantTurn two = call_turn("r2", "c2");
  two.tool_calls.push_back(ToolCall{"c3", "shell", R"({"cmd":"pwd"})"});
  c.append_assistant(two);
  c.append_tool_result("c2", "out2");
  c.append_tool_result("c3", "out3");
  return c;
}

}  // namespace

TEST_CASE("rounds are an assistant turn with tool calls plus its tool results") {
  Conversation c = first_user_turn();
  c.append_assistant(AssistantTurn{.reasoning = "r4", .content = "done"});  // no tool calls: not a round
  auto rounds = c.rounds();
  REQUIRE(rounds.size() == 2);
  CHECK(rounds[0].begin == 2);
  CHECK(rounds[0].end == 4);
  CHECK(rounds[1].begin == 4);
  CHECK(rounds[1].end == 7);
}

TEST_CASE("reasoning survives tool results and is dropped at a new user message") {
  Conversation c = first_user_turn();
  SUBCASE("within one user turn everything is kept") {
    std::vector<Message> expected = {system_msg("sys"),  user("task"),          assistant("r1", "c1"),
                                     tool("c1", "out1"), assistant("r2", "c2"), tool("c2", "out2"),
                                     tool("c3", "out3")};
    expected[4].tool_calls.push_back(ToolCall{"c3", "shell", R"({"cmd":"pwd"})"});
    CHECK(as_json(c.messages_for_model(true)) == as_json(expected));
  }
  SUBCASE("a new user message drops earlier reasoning, keeps calls and results, and later reasoning stays") {
    c.append_user("next");
    c.append_assistant(call_turn("r5", "c5"));
    c.append_tool_result("c5", "out5");
    std::vector<Message> expected = {system_msg("sys"),
                                     user("task"),
                                     assistant(std::nullopt, "c1"),
                                     tool("c1", "out1"),
                                     assistant(std::nullopt, "c2"),
                                     tool("c2", "out2"),
                                     tool("c3", "out3"),
                                     user("next"),
                                     assistant("r5", "c5"),
                                     tool("c5", "out5")};
    expected[4].tool_calls.push_back(ToolCall{"c3", "shell", R"({"cmd":"pwd"})"});
    CHECK(as_json(c.messages_for_model(true)) == as_json(expected));
    // The stored conversation itself keeps all reasoning (for trajectories and resuming).
    CHECK(c.messages()[2].reasoning_content == "r1");
  }
  SUBCASE("a developer message counts as a user message") {
    c.append(Message{.role = Role::developer, .content = "dev"});
    auto seen = c.messages_for_model(true);
    CHECK_FALSE(seen[2].reasoning_content);
    CHECK_FALSE(seen[4].reasoning_content);
  }
  SUBCASE("without thinking no reasoning is sent") {
    for (const Message& m : c.messages_for_model(false)) CHECK_FALSE(m.reasoning_content);
    CHECK(c.messages_for_model(false).size() == c.size());
  }
}

TEST_CASE("save and load give back the same conversation, origins included") {
  Conversation c = first_user_turn();
  c.insert(2, user("note"), Origin::note);
  test::TempDir dir("conv");
  REQUIRE(c.save(dir / "c.json").ok());
  auto loaded = Conversation::load(dir / "c.json");
  REQUIRE_MESSAGE(loaded.ok(), (loaded.ok() ? std::string() : loaded.error().message));
  CHECK(loaded->to_json() == c.to_json());
  CHECK(loaded->origin(2) == Origin::note);
  CHECK(loaded->messages()[3].reasoning_content == "r1");
  CHECK(loaded->rounds().size() == 2);
}

TEST_CASE("loading a bad file names the file and the message") {
  test::TempDir dir("conv");
  test::write_text(dir / "bad.json", R"({"messages": [{"role": "user", "content": "x"}, {"role": "robot"}]})");
  auto r = Conversation::load(dir / "bad.json");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("bad.json") != std::string::npos);
  CHECK(r.error().message.find("messages[1]") != std::string::npos);
  test::write_text(dir / "junk.json", "{not json");
  CHECK_FALSE(Conversation::load(dir / "junk.json"));
  CHECK_FALSE(Conversation::load(dir / "missing.json"));
}

TEST_CASE("write_file_atomic: concurrent writers of one file leave one whole text and no temporary files") {
  test::TempDir dir("dsa-atomic");
  const auto file = dir / "t.json";
  const std::string a(200000, 'a'), b(100000, 'b');
  std::thread other([&] {
    for (int i = 0; i < 50; ++i) CHECK(write_file_atomic(file, b).ok());
  });
  for (int i = 0; i < 50; ++i) CHECK(write_file_atomic(file, a).ok());
  other.join();
  const std::string text = test::read_text(file);
  CHECK((text == a || text == b));
  size_t n_files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++n_files;
  CHECK(n_files == 1);
  // A write that cannot happen says why, and leaves nothing behind.
  const auto missing_dir = write_file_atomic(dir / "no" / "x.json", "x");
  REQUIRE_FALSE(missing_dir.ok());
  CHECK(missing_dir.error().message ==
        "cannot write '" + (dir / "no" / "x.json").string() + "': No such file or directory");
  std::filesystem::create_directory(dir / "d");
  CHECK(write_file_atomic(dir / "d", "x").error().message ==
        "cannot write '" + (dir / "d").string() + "': a directory");
}
