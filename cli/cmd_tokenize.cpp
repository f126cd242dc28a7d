// `dsagent tokenize --model DIR TEXT [--json] [--special]` (cli.md): the token ids of TEXT under the
// model's tokenizer.json, one line; with --json, {"ids": [...], "pieces": [...]} where pieces are
// the tokens as the vocabulary spells them. `--bench-file F.jsonl` instead times encoding of every
// {"text": ...} line of F on one thread (scripts/bench_tokenizer.py compares it with HF tokenizers).
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "engine/loader/file_checks.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace dsa::cli {

namespace {

struct TokenizeArgs {
  std::string model_dir;
  std::string text;
  bool json = false;
  bool special = false;
  std::string bench_file;
  int bench_passes = 3;
};

// Prints one JSON line: sizes and the seconds of each pass over the texts (the first pass starts
// with an empty word cache).
int run_bench(const Tokenizer& tok, const TokenizeArgs& args) {
  // A directory or a FIFO is an error, not a file of no texts.
  const auto file = read_text_file(args.bench_file, "bench file");
  if (!file.ok()) {
    std::fprintf(stderr, "dsagent tokenize: %s\n", file.error().message.c_str());
    return 1;
  }
  std::istringstream in(*file);
  std::vector<std::string> texts;
  size_t n_bytes = 0;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      std::fprintf(stderr, "dsagent tokenize: %s:%zu: not a {\"text\": ...} line\n", args.bench_file.c_str(),
                   texts.size() + 1);
      return 1;
    }
    n_bytes += texts.emplace_back(j["text"].get<std::string>()).size();
  }
  nlohmann::json seconds = nlohmann::json::array();
  size_t n_tokens = 0;
  for (int pass = 0; pass < args.bench_passes; ++pass) {
    n_tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const std::string& t : texts) n_tokens += tok.encode(t, args.special).size();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const nlohmann::json out = {{"n_texts", texts.size()}, {"n_bytes", n_bytes}, {"n_tokens", n_tokens}, {"seconds", seconds}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int run_tokenize(const TokenizeArgs& args) {
  auto tok = Tokenizer::load(std::filesystem::path(args.model_dir) / "tokenizer.json");
  if (!tok.ok()) {
    std::fprintf(stderr, "dsagent tokenize: %s\n", tok.error().message.c_str());
    return 1;
  }
  if (!args.bench_file.empty()) return run_bench(*tok, args);
  const std::vector<int32_t> ids = tok->encode(args.text, args.special);
  if (args.json) {
    nlohmann::json pieces = nlohmann::json::array();
    for (int32_t id : ids) pieces.push_back(tok->token_text(id).value_or(""));
    const nlohmann::json out = {{"ids", ids}, {"pieces", pieces}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::string line;
  for (int32_t id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of TEXT under the model's tokenizer");
  auto args = std::make_shared<TokenizeArgs>();
  cmd->add_option("--model", args->model_dir, "Model directory holding tokenizer.json")->required();
  auto* text = cmd->add_option("text", args->text, "Text to encode");
  auto* bench = cmd->add_option("--bench-file", args->bench_file, "Time encoding the {\"text\": ...} lines of a JSONL file");
  text->excludes(bench);
  cmd->add_option("--bench-passes", args->bench_passes, "Passes over the bench file")->check(CLI::Range(1, INT_MAX));
  cmd->add_flag("--json", args->json, "Print {\"ids\": [...], \"pieces\": [...]}");
  cmd->add_flag("--special", args->special,
                "Match special tokens spelled in TEXT (template text); by default TEXT is plain");
  cmd->footer(
      "Examples:\n"
      "  dsagent tokenize --model ./DeepSeek-V3.2 'Hello! I am DeepSeek.'\n"
      "  dsagent tokenize --model ./DeepSeek-V3.2 --special --json '<｜User｜>1+1=?<｜Assistant｜><think>'\n");
  cmd->callback([args, text, bench, &exit_code] {
    if (text->count() == 0 && bench->count() == 0) {
      std::fprintf(stderr, "dsagent tokenize: TEXT is required\n");
      exit_code = 2;
      return;
    }
    exit_code = run_tokenize(*args);
  });
}

}  // namespace dsa::cli
