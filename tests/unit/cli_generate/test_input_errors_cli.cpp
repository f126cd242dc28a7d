// Bad input to `dsagent generate` and `dsagent bench` as a user gives it. Each is one clear line on
// stderr (CLI11's flag errors add their "Run with --help" line) and a non-zero exit, never an
// abort or a hang.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>

#include "engine/model/make_model.hpp"
#include "tests/test_support.hpp"

namespace dsa {
namespace {

using test::run_command;

std::string bin() { return test::dsagent_binary().string(); }

struct Tiny {
  test::TempDir tmp{"dsa-cli-input"};
  std::filesystem::path dir = tmp / "tiny";
  Tiny() { REQUIRE(make_model(dir, *preset_config("tiny"), {.seed = 5}).ok()); }
  std::string generate(const std::string& flags) const {
    return bin() + " generate --model '" + dir.string() + "' " + flags + " 2>&1";
  }
  std::string bench(const std::string& flags) const {
    return bin() + " bench --model '" + dir.string() + "' --positions 16 --tokens 1 --prefill-tokens 0 " + flags +
           " 2>&1";
  }
};

TEST_CASE("a FIFO in place of a checkpoint file is one line, not a wait forever") {
  Tiny m;
  for (const std::string file : {"config.json", "tokenizer.json", "model.safetensors"}) {
    CAPTURE(file);
    std::filesystem::remove(m.dir / file);
    REQUIRE(::mkfifo((m.dir / file).c_str(), 0600) == 0);
    // timeout(1) ends a process that blocks opening the FIFO (exit 124).
    const auto r = run_command("timeout 20 " + m.generate("--prompt hi --max-tokens 1"));
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.output == "dsagent generate: " + (m.dir / file).string() + ": is a FIFO, not a regular file\n",
                  r.output);
    std::filesystem::remove(m.dir / file);
    REQUIRE(make_model(m.dir, *preset_config("tiny"), {.seed = 5, .overwrite = true}).ok());
  }
}

}  // namespace
}  // namespace dsa
