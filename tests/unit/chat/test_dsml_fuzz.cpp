// Bounded fuzzing of the DSML parser: random valid replies (rendered by the encoder) parse back
// exactly, and random, mutated and truncated replies never crash and keep every property in
// dsml_properties.hpp (streamed == whole for random chunkings, arguments always a JSON object).
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fmt/format.h>
#include <random>

#include "dsml_properties.hpp"
#include "engine/chat/encoder.hpp"
#include "engine/chat/py_json.hpp"

namespace dsa {
namespace {

// Fragments for free text: they include "<", ">", quotes, newlines and multi-byte characters, so
// text often looks like the start of a marker, but none contains a marker.
constexpr std::array<std::string_view, 16> text_fragments = {"a", "bc", " ", "\n", "<", ">", "\"", "=", "é",
                                                             "｜", "/", "think", "DSML", "{\"k\": 1}", "🌤️", "\n\n"};
// Fragments for mutations: whole and partial markers.
constexpr std::array<std::string_view, 16> markup_fragments = {
    "<｜DSML｜",        "</｜DSML｜invoke>", "<｜DSML｜invoke name=\"", "\">", "<｜DSML｜parameter name=\"x\" string=\"",
    "false\">",        "</｜DSML｜parameter>", "\n\n<｜DSML｜function_calls>\n", "</｜DSML｜function_calls>",
    "<｜end▁of▁sentence｜>", "</think>", "<think>", "<｜DS", "\xE2\x96", "\n\n", "string=\"true\""};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return static_cast<size_t>(rng_() % n); }

  // Text with no special token in it (fragments can join into "<think>" or "｜DSML｜": drawn again).
  std::string free_text(size_t max_fragments) {
    for (;;) {
      std::string s;
      for (size_t n = below(max_fragments + 1); n > 0; --n) s += text_fragments[below(text_fragments.size())];
      if (s.find("<think>") == std::string::npos && s.find("</think>") == std::string::npos &&
          s.find("｜DSML｜") == std::string::npos)
        return s;
    }
  }

  json value(int depth) {
    switch (below(depth > 0 ? 7 : 5)) {
      case 0: return free_text(4);
      case 1: return static_cast<int64_t>(below(2000)) - 1000;
      case 2: return below(2) == 0;
      case 3: return nullptr;
      case 4: return free_text(2);
      case 5: {
        json a = json::array();
        for (size_t n = below(3); n > 0; --n) a.push_back(value(depth - 1));
        return a;
      }
      default: {
        json o = json::object();
        for (size_t n = below(3); n > 0; --n) o[free_text(2)] = value(depth - 1);
        return o;
      }
    }
  }

  // A random well-formed reply and the turn it must parse to.
  std::pair<std::string, AssistantTurn> valid_reply(bool thinking) {
    AssistantTurn turn;
    if (thinking) turn.reasoning = free_text(8);
    turn.content = free_text(8);
    for (size_t c = below(4); c > 0 && below(2) == 0; --c) {
      const std::string name = fmt::format("tool_{}", below(100));
      json args = json::object();
      for (size_t p = below(4); p > 0; --p) args[fmt::format("p{}", below(1000))] = value(2);
      turn.tool_calls.push_back(ToolCall{fmt::format("call_{}", turn.tool_calls.size()), name, py_json_dumps(args)});
    }
    turn.finish = turn.tool_calls.empty() ? FinishReason::stop : FinishReason::tool_calls;
    const std::vector<Message> messages = {
        Message{.role = Role::user, .content = "q"},
        Message{.role = Role::assistant, .content = turn.content, .reasoning_content = turn.reasoning,
                .tool_calls = turn.tool_calls},
    };
    const EncodeOptions opt{.thinking = thinking};
    const std::string prompt = join_text(encode_messages(std::span(messages).first(1), {}, opt));
    std::string text = join_text(encode_messages(messages, {}, opt)).substr(prompt.size());
    turn.raw_text = text;
    return {std::move(text), std::move(turn)};
  }

  std::string mutate(std::string s) {
    for (size_t n = 1 + below(4); n > 0; --n) {
      const size_t at = s.empty() ? 0 : below(s.size() + 1);
      switch (below(5)) {
        case 0: s.erase(at, below(12)); break;
        case 1: s.insert(at, markup_fragments[below(markup_fragments.size())]); break;
        case 2: s.insert(at, free_text(3)); break;
        case 3: s.resize(at); break;
        default:
          if (!s.empty()) s[below(s.size())] = static_cast<char>(rng_());
      }
    }
    return s;
  }

  std::string random_markup(size_t max_fragments) {
    std::string s;
    for (size_t n = below(max_fragments + 1); n > 0; --n)
      s += below(2) ? markup_fragments[below(markup_fragments.size())] : text_fragments[below(text_fragments.size())];
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

// DSA_FUZZ_SCALE=N multiplies the case counts of the fuzz tests (longer runs by hand or in CI).
static int fuzz_scale() {
  const char* s = std::getenv("DSA_FUZZ_SCALE");
  return s && std::atoi(s) > 0 ? std::atoi(s) : 1;
}

TEST_CASE("fuzz: 200k valid, mutated and random replies") {
  const int n_cases = 200'000 * fuzz_scale();
  const auto start = std::chrono::steady_clock::now();
  Generator gen(20251122);
  int n_failed = 0;
  for (int i = 0; i < n_cases && n_failed < 5; ++i) {
    const bool thinking = gen.below(2) == 0;
    std::string text;
    const size_t kind = gen.below(4);
    if (kind == 0) {
      auto [valid, expected] = gen.valid_reply(thinking);
      const AssistantTurn parsed = parse_completion(valid, thinking);
      if (test::describe(parsed) != test::describe(expected)) {
        ++n_failed;
        FAIL_CHECK("valid reply did not round-trip: " << valid);
      }
      text = valid;
    } else if (kind == 3) {
      text = gen.random_markup(24);
    } else {
      text = gen.mutate(gen.valid_reply(thinking).first);
    }
    const std::string problem = test::check_dsml_properties(text, thinking, static_cast<uint64_t>(i));
    if (!problem.empty()) {
      ++n_failed;
      FAIL_CHECK(problem << "\n  thinking=" << thinking << " text=" << json(text).dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("dsml fuzz: %d cases in %.2f s\n", n_cases, seconds);
  CHECK(n_failed == 0);
}

}  // namespace
}  // namespace dsa
