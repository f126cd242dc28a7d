// Opening a checkpoint's files without surprises: a path that is not a regular file (a FIFO would
// block open() until a writer came, forever; a directory reads as nothing) is named for what it
// is, and a file that cannot be read says why.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include "engine/api/result.hpp"

namespace dsa {

// What a path is when it is not a regular file (symbolic links followed): "is missing", "is a
// symbolic link to a missing file", "is a directory", "is a FIFO, not a regular file", ...; empty
// for a regular file.
std::string not_regular_file_reason(const std::filesystem::path& path);

// Opens path read-only without blocking and checks that it is a regular file: the descriptor, or
// a one-line error naming the path ("PATH: cannot open WHAT: Permission denied", "PATH: is a
// FIFO, not a regular file"; for a file in a directory that does not exist, "DIR: directory does
// not exist"). The caller closes the descriptor.
Result<int> open_regular_file(const std::filesystem::path& path, std::string_view what);

// The whole text of a regular file (config.json, tokenizer.json, the shard index), with the errors
// of open_regular_file.
Result<std::string> read_text_file(const std::filesystem::path& path, std::string_view what);

}  // namespace dsa
