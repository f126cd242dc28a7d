// `dsagent render` run as a user runs it: the golden conversation, both modes, --tools, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "tests/test_support.hpp"

namespace dsa {
namespace {

std::string golden_dir() { return (test::shared_dir() / "fixtures" / "dsv32-encoding").string(); }

std::string strip(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  const auto last = s.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

test::CommandResult render(const std::string& args) {
  return test::run_command(test::dsagent_binary().string() + " render " + args);
}

TEST_CASE("render prints DeepSeek's golden output for the golden input") {
  const auto r = render("--messages '" + golden_dir() + "/test_input.json'");
  CHECK(r.exit_code == 0);
  CHECK(r.output == strip(test::read_text(golden_dir() + "/test_output.txt")));
}

TEST_CASE("render: --tools file, bare message arrays and chat mode") {
  test::TempDir dir("render");
  test::write_text(dir / "messages.json", R"([{"role": "user", "content": "hi"}])");
  test::write_text(dir / "tools.json", R"([{"type": "function", "function": {"name": "t", "description": "d", "parameters": {}}}])");
  const auto chat = render("--messages " + (dir / "messages.json").string() + " --thinking off");
  CHECK(chat.exit_code == 0);
  CHECK(chat.output == "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>");

  const auto with_tools = render("--messages " + (dir / "messages.json").string() + " --tools " + (dir / "tools.json").string());
  CHECK(with_tools.exit_code == 0);
  CHECK(with_tools.output.starts_with("<｜begin▁of▁sentence｜>\n\n## Tools\n"));
  CHECK(with_tools.output.ends_with(
      "<functions>\n{\"name\": \"t\", \"description\": \"d\", \"parameters\": {}}\n</functions>\n<｜User｜>hi<｜Assistant｜><think>"));
}

TEST_CASE("render: mistakes in the input are one clear line on stderr and a non-zero exit") {
  test::TempDir dir("render");
  const std::string bad_json = (dir / "bad.json").string();
  test::write_text(bad_json, "{\"messages\": [");
  const std::string orphan = (dir / "orphan.json").string();
  test::write_text(orphan, R"({"messages": [{"role": "user", "content": "u"}, {"role": "tool", "content": "r"}]})");
  const std::string bad_role = (dir / "role.json").string();
  test::write_text(bad_role, R"({"messages": [{"role": "robot", "content": "u"}]})");

  const auto missing = render("--messages " + (dir / "nope.json").string() + " 2>&1");
  CHECK(missing.exit_code == 1);
  CHECK(missing.output == "dsagent render: " + (dir / "nope.json").string() + ": cannot open file\n");

  const auto parse = render("--messages " + bad_json + " 2>&1");
  CHECK(parse.exit_code == 1);
  CHECK(parse.output.starts_with("dsagent render: " + bad_json + ": not valid JSON ("));
  // Bytes that are not UTF-8 are named, escaped, not echoed raw.
  const std::string latin1 = (dir / "latin1.json").string();
  test::write_text(latin1, "{\"messages\": [{\"role\": \"user\", \"content\": \"caf\xe9\"}]}");
  const auto bytes = render("--messages " + latin1 + " 2>&1");
  CHECK(bytes.exit_code == 1);
  CHECK(bytes.output.starts_with("dsagent render: " + latin1 + ": not valid JSON ("));
  CHECK(bytes.output.find("caf\\xe9") != std::string::npos);
  CHECK(bytes.output.find('\xe9') == std::string::npos);
  CHECK(std::count(bytes.output.begin(), bytes.output.end(), '\n') == 1);

  const auto tool = render("--messages " + orphan + " 2>&1");
  CHECK(tool.exit_code == 1);
  CHECK(tool.output == "dsagent render: " + orphan +
                           ": message 1 (tool): a tool result must follow an assistant message with tool calls\n");

  const auto role = render("--messages " + bad_role + " 2>&1");
  CHECK(role.exit_code == 1);
  CHECK(role.output == "dsagent render: " + bad_role + ": messages[0]: unknown role 'robot'\n");
}

}  // namespace
}  // namespace dsa
