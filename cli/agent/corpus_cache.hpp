// The corpus behind --corpus: a built index (`dsagent index`) as is, or a JSONL of documents
// indexed on first use into a cache file in the temp dir, so a model directory can ship its
// corpus as plain JSONL.
#pragma once
#include <filesystem>
#include <memory>

#include "engine/api/result.hpp"
#include "tools/browse/corpus.hpp"

namespace dsa::cli {

// A path ending in .jsonl is indexed into $TMPDIR/dsagent-corpus-<key>.db, where the key covers
// the file's absolute path, size and modification time: a changed file gets a fresh index, an
// unchanged one reuses it. Anything else opens as an index. Errors name the file.
Result<std::unique_ptr<Corpus>> open_corpus(const std::filesystem::path& path);

// The cache file a JSONL corpus is indexed into (what open_corpus uses); error if it cannot stat it.
Result<std::filesystem::path> corpus_cache_path(const std::filesystem::path& jsonl);

}  // namespace dsa::cli
