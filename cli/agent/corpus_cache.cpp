// JSONL corpora indexed on first use (see corpus_cache.hpp).
#include "cli/agent/corpus_cache.hpp"

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>

namespace dsa::cli {

namespace fs = std::filesystem;

Result<fs::path> corpus_cache_path(const fs::path& jsonl) {
  std::error_code ec;
  const fs::path abs = fs::absolute(jsonl, ec);
  const auto size = fs::file_size(abs, ec);
  if (ec) return make_error(jsonl.string() + ": " + ec.message());
  const auto mtime = fs::last_write_time(abs, ec);
  if (ec) return make_error(jsonl.string() + ": " + ec.message());
  const std::string key =
      abs.string() + "\n" + std::to_string(size) + "\n" + std::to_string(mtime.time_since_epoch().count());
  char name[64];
  std::snprintf(name, sizeof name, "dsagent-corpus-%016zx.db", std::hash<std::string>{}(key));
  return fs::temp_directory_path(ec) / name;
}

Result<std::unique_ptr<Corpus>> open_corpus(const fs::path& path) {
  if (path.extension() != ".jsonl") return Corpus::open(path);
  DSA_TRY(cache, corpus_cache_path(path));
  std::error_code ec;
  if (!fs::exists(cache, ec)) {
    // Built under a name of this process's own, then renamed: two runs starting together each
    // build a complete index and neither ever opens a half-written one.
    fs::path mine = cache;
    mine += "." + std::to_string(::getpid());
    DSA_TRY(stats, build_corpus_index(path, mine));
    fs::rename(mine, cache, ec);
    if (ec) {
      const std::string why = ec.message();
      fs::remove(mine, ec);
      return make_error(cache.string() + ": cannot store the corpus index (" + why + ")");
    }
    std::fprintf(stderr, "dsagent: indexed %lld documents of %s into %s\n", static_cast<long long>(stats.documents),
                 path.c_str(), cache.c_str());
  }
  return Corpus::open(cache);
}

}  // namespace dsa::cli
