// read_file, write_file and edit_file in a temporary work dir: success and failure paths, the
// work-dir jail (../ and symlink escapes) and the approval modes for writes.
#include <doctest/doctest.h>

#include "tools/coding_tools.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;
namespace fs = std::filesystem;

namespace {

struct FileFixture {
  TempDir dir{"dsa-files"};
  ToolRegistry reg;
  ToolContext ctx = context_in(dir);
  FileFixture() { add_coding_tools(reg); }
  Observation call(const std::string& name, const json& args) { return call_tool(reg, ctx, name, args); }
};

}  // namespace

TEST_CASE("add_coding_tools registers the six coding tools in order") {
  ToolRegistry reg;
  add_coding_tools(reg);
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"shell", "read_file", "write_file", "edit_file", "grep", "glob"});
}

TEST_CASE("read_file numbers lines and reads ranges") {
  FileFixture f;
  write_text(f.dir / "a.txt", "one\ntwo\nthree\nfour");
  CHECK(f.call("read_file", {{"path", "a.txt"}}).text == "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n");
  CHECK(f.call("read_file", {{"path", "a.txt"}, {"offset", 2}, {"limit", 2}}).text ==
        "     2\ttwo\n     3\tthree\n[lines 2-3 of 4]");
  CHECK(f.call("read_file", {{"path", (f.dir / "a.txt").string()}, {"offset", 4}}).text == "     4\tfour\n[lines 4-4 of 4]");
  CHECK(f.call("read_file", {{"path", "a.txt"}, {"offset", 3}, {"limit", INT64_MAX}}).text ==
        "     3\tthree\n     4\tfour\n[lines 3-4 of 4]");
  write_text(f.dir / "empty.txt", "");
  CHECK(f.call("read_file", {{"path", "empty.txt"}}).text == "empty.txt is empty");
}

TEST_CASE("read_file failures: missing, directory, binary, too large, past the end, bad range") {
  FileFixture f;
  write_text(f.dir / "a.txt", "one\n");
  write_text(f.dir / "blob.bin", std::string("ab\0cd", 5));
  fs::create_directory(f.dir / "sub");
  auto error_of = [&](const json& args) {
    Observation o = f.call("read_file", args);
    CHECK(o.is_error);
    return o.text;
  };
  CHECK(error_of({{"path", "nope.txt"}}) == "read_file: nope.txt: no such file");
  CHECK(error_of({{"path", "sub"}}) == "read_file: sub: is a directory");
  CHECK(error_of({{"path", "blob.bin"}}) == "read_file: blob.bin: binary file (5 bytes), not shown");
  CHECK(error_of({{"path", "a.txt"}, {"offset", 5}}) == "read_file: a.txt has 1 lines; offset 5 is past the end");
  CHECK(error_of({{"path", "a.txt"}, {"offset", 0}}) == "read_file: offset must be 1 or more (lines are numbered from 1)");
  CHECK(error_of({{"path", "a.txt"}, {"offset", "2"}}) == "read_file: argument 'offset': expected integer, got string");
  write_text(f.dir / "huge.log", "");
  fs::resize_file(f.dir / "huge.log", 11u << 20);  // sparse: costs no disk
  CHECK(error_of({{"path", "huge.log"}}) ==
        "read_file: huge.log: 11534336 bytes, over the 10485760-byte limit; use grep or the shell to read part of it");
}

TEST_CASE("the jail refuses paths outside the work dir, through ../ and through symlinks") {
  FileFixture f;
  TempDir outside("dsa-outside");
  write_text(outside / "secret.txt", "secret\n");
  fs::create_directory_symlink(outside.path(), f.dir / "link");
  write_text(f.dir / "inside.txt", "ok\n");
  fs::create_symlink(f.dir / "inside.txt", f.dir / "alias.txt");

  std::string rel_escape = "../" + outside.path().filename().string() + "/secret.txt";
  for (const std::string& path : {rel_escape, std::string("link/secret.txt"), (outside / "secret.txt").string()}) {
    Observation r = f.call("read_file", {{"path", path}});
    CHECK(r.is_error);
    CHECK(r.text == "read_file: " + path + ": outside the work dir " + fs::canonical(f.dir.path()).string() + " (refused)");
    CHECK(f.call("write_file", {{"path", path}, {"content", "x"}}).is_error);
    CHECK(f.call("edit_file", {{"path", path}, {"old_text", "secret"}, {"new_text", "x"}}).is_error);
  }
  CHECK(read_text(outside / "secret.txt") == "secret\n");
  CHECK(f.call("grep", {{"pattern", "secret"}, {"path", "link"}}).is_error);
  CHECK(f.call("glob", {{"pattern", "*"}, {"path", ".."}}).is_error);
  // A symlink that stays inside is fine.
  CHECK(f.call("read_file", {{"path", "alias.txt"}}).text == "     1\tok\n");
  // A link to a file that does not exist yet: a write through it would create the file outside.
  fs::create_symlink(outside / "created.txt", f.dir / "dangling.txt");
  fs::create_symlink("dangling.txt", f.dir / "chain.txt");
  for (const std::string path : {"dangling.txt", "chain.txt"}) {
    Observation w = f.call("write_file", {{"path", path}, {"content", "x"}});
    CHECK(w.is_error);
    CHECK(w.text ==
          "write_file: " + path + ": outside the work dir " + fs::canonical(f.dir.path()).string() + " (refused)");
  }
  CHECK_FALSE(fs::exists(outside / "created.txt"));
  // One that points inside is followed: the write lands on its target.
  fs::create_symlink(f.dir / "later.txt", f.dir / "to_later.txt");
  CHECK_FALSE(f.call("write_file", {{"path", "to_later.txt"}, {"content", "y"}}).is_error);
  CHECK(read_text(f.dir / "later.txt") == "y");
}

TEST_CASE("write_file creates files and directories, and overwrites") {
  FileFixture f;
  Observation created = f.call("write_file", {{"path", "src/new/x.txt"}, {"content", "a\nb\n"}});
  CHECK_FALSE(created.is_error);
  CHECK(created.text == "created src/new/x.txt (4 bytes, 2 lines)");
  CHECK(read_text(f.dir / "src/new/x.txt") == "a\nb\n");
  CHECK(f.call("write_file", {{"path", "src/new/x.txt"}, {"content", "c"}}).text == "overwrote src/new/x.txt (1 bytes, 1 lines)");
  CHECK(read_text(f.dir / "src/new/x.txt") == "c");
  Observation dir = f.call("write_file", {{"path", "src"}, {"content", "c"}});
  CHECK(dir.is_error);
  CHECK(dir.text == "write_file: src: is a directory");
}

TEST_CASE("edit_file replaces one exact occurrence; missing and non-unique text are reported") {
  FileFixture f;
  write_text(f.dir / "code.py", "def f():\n    return 1\n\ndef g():\n    return 1\n");
  Observation missing = f.call("edit_file", {{"path", "code.py"}, {"old_text", "return 2"}, {"new_text", "x"}});
  CHECK(missing.is_error);
  CHECK(missing.text == "edit_file: old_text not found in code.py (it must match exactly, including whitespace and indentation)");
  Observation twice = f.call("edit_file", {{"path", "code.py"}, {"old_text", "    return 1"}, {"new_text", "    return 2"}});
  CHECK(twice.is_error);
  CHECK(twice.text == "edit_file: old_text occurs 2 times in code.py; include more surrounding lines so that it matches exactly once");
  CHECK(read_text(f.dir / "code.py") == "def f():\n    return 1\n\ndef g():\n    return 1\n");

  Observation ok = f.call("edit_file", {{"path", "code.py"}, {"old_text", "def g():\n    return 1"}, {"new_text", "def g():\n    return 2"}});
  CHECK_FALSE(ok.is_error);
  CHECK(ok.text == "edited code.py: replaced 2 line(s) at line 4 with 2 line(s)");
  CHECK(read_text(f.dir / "code.py") == "def f():\n    return 1\n\ndef g():\n    return 2\n");

  CHECK(f.call("edit_file", {{"path", "nope.py"}, {"old_text", "a"}, {"new_text", "b"}}).text == "edit_file: nope.py: no such file");
  CHECK(f.call("edit_file", {{"path", "code.py"}, {"old_text", ""}, {"new_text", "b"}}).is_error);
}

TEST_CASE("writes in read-only and ask modes") {
  FileFixture f;
  write_text(f.dir / "a.txt", "old\n");
  f.ctx.approval = ApprovalMode::read_only;
  Observation w = f.call("write_file", {{"path", "a.txt"}, {"content", "new\n"}});
  CHECK(w.is_error);
  CHECK(w.text == "refused: read-only mode allows no writes (write_file a.txt (4 bytes))");
  Observation e = f.call("edit_file", {{"path", "a.txt"}, {"old_text", "old"}, {"new_text", "new"}});
  CHECK(e.text == "refused: read-only mode allows no writes (edit_file a.txt)");
  CHECK(read_text(f.dir / "a.txt") == "old\n");
  // Reading needs no approval.
  CHECK(f.call("read_file", {{"path", "a.txt"}}).text == "     1\told\n");

  f.ctx.approval = ApprovalMode::ask;
  std::vector<std::string> asked;
  f.ctx.ask = [&](const std::string& action) {
    asked.push_back(action);
    return action.rfind("edit_file", 0) == 0;  // approve edits, decline whole-file writes
  };
  CHECK(f.call("write_file", {{"path", "a.txt"}, {"content", "new\n"}}).text == "refused: the user did not approve write_file a.txt (4 bytes)");
  CHECK_FALSE(f.call("edit_file", {{"path", "a.txt"}, {"old_text", "old"}, {"new_text", "new"}}).is_error);
  CHECK(read_text(f.dir / "a.txt") == "new\n");
  CHECK(asked == std::vector<std::string>{"write_file a.txt (4 bytes)", "edit_file a.txt"});
}
