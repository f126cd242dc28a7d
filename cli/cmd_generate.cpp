// `dsagent generate` (cli.md): one completion on the local engine. The prompt is wrapped as one user
// message through the chat encoder (reasoning, content and tool calls are parsed), or with --raw
// tokenised as plain text and continued as is. Text streams to stdout; usage goes to stderr.
// With --json nothing streams: one JSON object with the ids, text and usage is printed at the end.
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/engine_flags.hpp"
#include "cli/flag_ranges.hpp"
#include "engine/api/types.hpp"
#include "engine/chat/encoder.hpp"
#include "engine/model/open_model.hpp"
#include "engine/runtime/local_llm.hpp"
#include "engine/runtime/tokenizer_check.hpp"

namespace dsa::cli {

namespace {

struct GenerateArgs {
  std::string model_dir;
  std::string prompt;
  int64_t max_tokens = 256;
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  uint64_t seed = 0;
  bool raw = false;
  bool special = false;  // with --raw: special-token text (<｜User｜>, <think>, ...) becomes those tokens
  std::string thinking = "on";
  std::string attention = "sparse";
  EngineFlags engine;
  bool json = false;
  int logprobs = -1;  // with --raw --json: per generated token its log-probability and the n most likely
};

// Prints reasoning, then content, as they arrive; a blank line between the two.
class StdoutSink final : public StreamSink {
 public:
  void on_reasoning(std::string_view d) override {
    in_reasoning_ = true;
    write(d);
  }
  void on_content(std::string_view d) override {
    if (in_reasoning_ && !d.empty()) std::fputs("\n\n", stdout), in_reasoning_ = false;
    write(d);
  }
  void on_tool_call(const ToolCall& c) override {
    std::printf("\n%s\n", to_json(c).dump().c_str());
    std::fflush(stdout);
  }

 private:
  static void write(std::string_view d) {
    std::fwrite(d.data(), 1, d.size(), stdout);
    std::fflush(stdout);
  }
  bool in_reasoning_ = false;
};

const char* finish_name(FinishReason f) {
  switch (f) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::tool_calls: return "tool_calls";
    case FinishReason::error: return "error";
  }
  return "?";
}

void print_usage(const Usage& u, double seconds) {
  std::fprintf(stderr,
               "usage: prompt_tokens=%lld cached_tokens=%lld completion_tokens=%lld reasoning_tokens=%lld "
               "seconds=%.3f (%.2f tokens/s generated)\n",
               (long long)u.prompt_tokens, (long long)u.cached_tokens, (long long)u.completion_tokens,
               (long long)u.reasoning_tokens, seconds, seconds > 0 ? double(u.completion_tokens) / seconds : 0.0);
}

json logprobs_json(const std::vector<StepLogprobs>& steps) {
  json out = json::array();
  for (const StepLogprobs& s : steps) {
    json top = json::array();
    for (const TokenLogprob& t : s.top) top.push_back({t.id, t.logprob});
    out.push_back({{"logprob", s.chosen}, {"top", top}});
  }
  return out;
}

int run_generate(const GenerateArgs& args) {
  if (args.logprobs >= 0 && !(args.raw && args.json)) {
    std::fprintf(stderr, "dsagent generate: --logprobs needs --raw and --json\n");
    return 2;
  }
  const std::filesystem::path dir(args.model_dir);
  auto tok = load_checked_tokenizer(dir);
  if (!tok.ok()) {
    std::fprintf(stderr, "dsagent generate: %s\n", tok.error().message.c_str());
    return 1;
  }
  // The caches are sized for this request only: prompt + max_tokens.
  std::vector<int32_t> raw_ids;
  std::vector<Message> messages;
  int64_t n_prompt = 0;
  if (args.raw) {
    raw_ids = tok->encode(args.prompt, args.special);
    n_prompt = int64_t(raw_ids.size());
  } else {
    messages.push_back(Message{.role = Role::user, .content = args.prompt});
    const EncodeOptions opt{.thinking = args.thinking == "on"};
    for (const PromptPiece& p : encode_messages(messages, {}, opt)) n_prompt += int64_t(tok->encode(p.text, p.is_template).size());
  }
  const AttentionMode mode = args.attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;
  const int64_t context = n_prompt + std::max<int64_t>(args.max_tokens, 1);
  auto engine = engine_options(args.engine);
  if (!engine.ok()) {
    std::fprintf(stderr, "dsagent generate: %s\n", engine.error().message.c_str());
    return 1;
  }
  engine->attention = mode;
  engine->context = context;
  auto model = open_model(dir, *engine);
  if (!model.ok()) {
    std::fprintf(stderr, "dsagent generate: %s\n", model.error().message.c_str());
    return 1;
  }
  LocalLlm llm(dir.filename().string(), std::move(*tok), std::move(*model), context);

  const auto t0 = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (args.raw) {
    GenerateParams params;
    params.max_tokens = args.max_tokens;
    params.sampling = {.temperature = args.temperature, .top_p = args.top_p, .top_k = args.top_k, .seed = args.seed};
    params.top_logprobs = args.logprobs;
    std::string text;
    auto gen = llm.complete(raw_ids, params, [&](std::string_view t) {
      if (args.json) {
        text += t;
      } else {
        std::fwrite(t.data(), 1, t.size(), stdout);
        std::fflush(stdout);
      }
    });
    if (!gen.ok()) {
      std::fprintf(stderr, "dsagent generate: %s\n", gen.error().message.c_str());
      return 1;
    }
    const Usage usage{.prompt_tokens = gen->prompt_tokens, .completion_tokens = int64_t(gen->tokens.size()),
                      .cached_tokens = gen->cached_tokens};
    if (args.json) {
      json out = {{"prompt_ids", raw_ids}, {"ids", gen->tokens}, {"text", text},
                  {"finish", gen->hit_eos ? "stop" : "length"}, {"usage", to_json(usage)}};
      if (args.logprobs >= 0) out["logprobs"] = logprobs_json(gen->logprobs);
      std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
    }
    print_usage(usage, seconds());
    return 0;
  }

  GenOptions opt;
  opt.thinking = args.thinking == "on";
  opt.temperature = args.temperature;
  opt.top_p = args.top_p;
  opt.top_k = args.top_k;
  opt.seed = args.seed;
  opt.max_tokens = args.max_tokens;
  StdoutSink sink;
  auto turn = llm.generate(messages, {}, opt, args.json ? nullptr : &sink);
  if (!turn.ok()) {
    std::fprintf(stderr, "dsagent generate: %s\n", turn.error().message.c_str());
    return 1;
  }
  if (args.json) {
    json calls = json::array();
    for (const ToolCall& c : turn->tool_calls) calls.push_back(to_json(c));
    json out = {{"reasoning", turn->reasoning}, {"content", turn->content}, {"tool_calls", calls},
                {"finish", finish_name(turn->finish)}, {"usage", to_json(turn->usage)}, {"raw_text", turn->raw_text}};
    if (turn->format_error) out["format_error"] = turn->format_error->message;
    std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  if (turn->format_error) std::fprintf(stderr, "format: %s\n", turn->format_error->message.c_str());
  print_usage(turn->usage, seconds());
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text with the local engine from one prompt");
  cmd->footer(
      "Examples:\n"
      "  dsagent generate --model ./tiny --prompt 'Hello' --max-tokens 32\n"
      "  dsagent generate --model ./tiny --prompt 'Once upon a time' --raw --temperature 0.8 --seed 1\n"
      "  dsagent generate --model ./tiny --prompt 'Hi' --json\n"
      "  dsagent generate --model ./tiny --prompt 'Hi' --ranks 2 --launch processes   # one process per rank");
  cmd->add_option("--model", args->model_dir, "model directory (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("--prompt", args->prompt, "the prompt text")->required();
  cmd->add_option("--max-tokens", args->max_tokens, "tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(INT32_MAX)));
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->capture_default_str()->check(real_range(0, 100));
  cmd->add_option("--top-p", args->top_p, "nucleus sampling mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--top-k", args->top_k, "keep the k most likely tokens (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, INT_MAX));
  cmd->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--raw", args->raw, "tokenise the prompt as plain text, no chat template");
  cmd->add_flag("--special", args->special,
                "with --raw: special tokens written in the prompt (<｜User｜>, <think>, ...) are those tokens, "
                "e.g. for a prompt from `dsagent render`");
  cmd->add_option("--thinking", args->thinking, "thinking mode of the chat template")
      ->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--attention", args->attention, "sparse (DSA) or dense causal attention")
      ->capture_default_str()->check(CLI::IsMember({"sparse", "dense"}));
  add_engine_flags(*cmd, args->engine);
  cmd->add_flag("--json", args->json, "print one JSON object (ids, text, usage) instead of streaming");
  cmd->add_option("--logprobs", args->logprobs,
                  "with --raw --json: each generated token's log-probability and the N most likely [[id, logprob]]")
      ->check(CLI::Range(0, 100));
  cmd->callback([args, &exit_code] { exit_code = run_generate(*args); });
}

}  // namespace dsa::cli
