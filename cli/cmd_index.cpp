// `dsagent index CORPUS.jsonl --out corpus.db` (cli.md): builds the offline search corpus the
// browsing tools read (SQLite FTS5, BM25). Lines are JSON objects {docid, url?, title?, text}.
#include <chrono>
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "tools/browse/corpus.hpp"

namespace dsa::cli {

void add_index_command(CLI::App& app, int& exit_code) {
  struct Args {
    std::string input, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("index", "Build the offline search corpus from a JSONL file");
  cmd->footer(
      "Each line: {\"docid\": ..., \"url\": ..., \"title\": ..., \"text\": ...} (\"id\" and \"contents\" are\n"
      "accepted too). The browsing tools read the result with --corpus.\n\n"
      "Example:\n  dsagent index docs.jsonl --out corpus.db");
  cmd->add_option("corpus", args->input, "JSONL file of documents")->required();
  cmd->add_option("--out,-o", args->out, "SQLite file to write")->required();
  cmd->callback([args, &exit_code] {
    const auto t0 = std::chrono::steady_clock::now();
    bool progress_shown = false;
    auto stats = build_corpus_index(args->input, args->out, [&progress_shown](int64_t n) {
      std::fprintf(stderr, "\rindexed %lld documents", static_cast<long long>(n));
      progress_shown = true;
    });
    if (!stats) {
      std::fprintf(stderr, "%sdsagent index: %s\n", progress_shown ? "\n" : "", stats.error().message.c_str());
      exit_code = 1;
      return;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\rindexed %lld documents (%.1f MB of text) into %s in %.1f s\n",
                 static_cast<long long>(stats->documents), static_cast<double>(stats->bytes) / 1e6, args->out.c_str(), s);
    exit_code = 0;
  });
}

}  // namespace dsa::cli
