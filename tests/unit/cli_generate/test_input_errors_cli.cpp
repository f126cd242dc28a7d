// Bad input to `dsagent generate` and `dsagent bench` as a user gives it. Each is one clear line on
// stderr and a non-zero exit, never an abort or a hang.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>

#include "engine/model/make_model.hpp"
#include "tests/test_support.hpp"

namespace dsa {
namespace {

using test::run_command;

std::string bin() { return test::dsagent_binary().string(); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

int64_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

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

TEST_CASE("numeric flags out of range name the range in plain numbers") {
  Tiny m;
  const auto max_tokens = run_command(m.generate("--prompt hi --max-tokens 0"));
  CHECK(max_tokens.exit_code != 0);
  CHECK_MESSAGE(contains(max_tokens.output, "--max-tokens: Value 0 not in range 1 to 2147483647"), max_tokens.output);
  CHECK(lines(max_tokens.output) == 1);
  const auto temperature = run_command(m.generate("--prompt hi --temperature -1"));
  CHECK(temperature.exit_code != 0);
  CHECK_MESSAGE(contains(temperature.output, "--temperature: Value -1 not in range 0 to 100"), temperature.output);
  const auto ranks = run_command(m.generate("--prompt hi --ranks 0"));
  CHECK(ranks.exit_code != 0);
  CHECK_MESSAGE(contains(ranks.output, "Value 0 not in range 1 to 1024"), ranks.output);
}

TEST_CASE("bench flags past what a machine can run are refused before anything is started") {
  Tiny m;
  const std::pair<std::string, std::string> cases[] = {
      {"--concurrency 100000", "--concurrency: Value 100000 not in range 1 to 1024"},
      {"--threads 100000", "--threads: Value 100000 not in range 0 to 1024"},
      {"--probe-mib 100000000", "--probe-mib: Value 100000000 not in range 1 to 16384"},
      {"--batch 100000000", "dsagent bench: --batch: '100000000' is not an integer from 1 to 1024\n"},
      {"--batch 1,99999999999999999999",
       "dsagent bench: --batch: '99999999999999999999' is not an integer from 1 to 1024"},
  };
  for (const auto& [flags, message] : cases) {
    CAPTURE(flags);
    const auto r = run_command(m.bench(flags));
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(contains(r.output, message), r.output);
    CHECK(lines(r.output) == 1);
  }
}

TEST_CASE("an empty prompt is one line, its prefix once") {
  Tiny m;
  const auto r = run_command(m.generate("--raw --prompt '' --max-tokens 2"));
  CHECK(r.exit_code == 1);
  CHECK(r.output == "dsagent generate: the prompt is empty\n");
}

TEST_CASE("DSA_THREADS that is not a thread count is an error, not silently the default") {
  Tiny m;
  for (const std::string value : {"abc", "-3", "0", "100000"}) {
    const auto r = run_command("DSA_THREADS=" + value + " " + m.generate("--prompt hi --max-tokens 1"));
    CHECK(r.exit_code == 1);
    CHECK(r.output == "dsagent: DSA_THREADS=" + value + " is not a thread count from 1 to 1024\n");
  }
  CHECK(run_command("DSA_THREADS=2 " + m.generate("--prompt hi --max-tokens 1")).exit_code == 0);
}

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
