// grep and glob over a small tree in a temporary work dir.
#include <doctest/doctest.h>

#include "tools/coding_tools.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;
namespace fs = std::filesystem;

namespace {

struct TreeFixture {
  TempDir dir{"dsa-search"};
  ToolRegistry reg;
  ToolContext ctx = context_in(dir);
  TreeFixture() {
    add_coding_tools(reg);
    fs::create_directories(dir / "src/util");
    fs::create_directories(dir / ".git");
    write_text(dir / "README.md", "# Demo\nTODO: write docs\n");
    write_text(dir / "src/main.cpp", "int main() {\n  // TODO: parse args\n  return run();\n}\n");
    write_text(dir / "src/util/str.hpp", "// todo later\nstd::string trim(std::string s);\n");
    write_text(dir / "src/util/blob.bin", std::string("TODO\0\1\2", 7));
    write_text(dir / ".git/config", "TODO in git\n");
  }
  Observation call(const std::string& name, const json& args) { return call_tool(reg, ctx, name, args); }
};

}  // namespace

TEST_CASE("grep finds matching lines with paths and line numbers, skipping binaries and .git") {
  TreeFixture f;
  CHECK(f.call("grep", {{"pattern", "TODO"}}).text ==
        "README.md:2: TODO: write docs\nsrc/main.cpp:2:   // TODO: parse args\n[2 matches in 2 files]");
  CHECK(f.call("grep", {{"pattern", "^\\s*//\\s+todo"}, {"ignore_case", true}}).text ==
        "src/main.cpp:2:   // TODO: parse args\nsrc/util/str.hpp:1: // todo later\n[2 matches in 2 files]");
  CHECK(f.call("grep", {{"pattern", "TODO"}, {"glob", "*.cpp"}}).text == "src/main.cpp:2:   // TODO: parse args\n[1 matches in 1 files]");
  CHECK(f.call("grep", {{"pattern", "trim|main"}, {"path", "src"}, {"glob", "util/**"}}).text ==
        "src/util/str.hpp:2: std::string trim(std::string s);\n[1 matches in 1 files]");
  CHECK(f.call("grep", {{"pattern", "return"}, {"path", "src/main.cpp"}}).text == "src/main.cpp:3:   return run();\n[1 matches in 1 files]");
  Observation none = f.call("grep", {{"pattern", "nowhere"}});
  CHECK_FALSE(none.is_error);
  CHECK(none.text == "no matches for /nowhere/ under .");
}

TEST_CASE("grep reports a bad regex and caps the number of matches") {
  TreeFixture f;
  Observation bad = f.call("grep", {{"pattern", "a(b"}});
  CHECK(bad.is_error);
  CHECK(bad.text == "grep: invalid regex at offset 3: missing closing parenthesis");
  std::string many;
  for (int i = 0; i < 300; ++i) many += "hit " + std::to_string(i) + "\n";
  write_text(f.dir / "many.txt", many);
  Observation capped = f.call("grep", {{"pattern", "^hit"}, {"path", "many.txt"}});
  CHECK(capped.text.find("many.txt:200: hit 199\n[stopped at 200 matches; narrow the pattern, path or glob]") != std::string::npos);
  CHECK(capped.text.find("hit 200") == std::string::npos);
}

TEST_CASE("glob lists matching files, sorted, with ** and name-only patterns") {
  TreeFixture f;
  CHECK(f.call("glob", {{"pattern", "*.?pp"}}).text == "src/main.cpp\nsrc/util/str.hpp\n");
  CHECK(f.call("glob", {{"pattern", "src/**/*.hpp"}}).text == "src/util/str.hpp\n");
  CHECK(f.call("glob", {{"pattern", "**"}, {"path", "src/util"}}).text == "src/util/blob.bin\nsrc/util/str.hpp\n");
  CHECK(f.call("glob", {{"pattern", "*.md"}}).text == "README.md\n");
  CHECK(f.call("glob", {{"pattern", "config"}}).text == "no files match config under .");
  Observation not_dir = f.call("glob", {{"pattern", "*"}, {"path", "README.md"}});
  CHECK(not_dir.is_error);
  CHECK(not_dir.text == "glob: README.md: not a directory");
}
