// Whole-file writes that a crash cannot tear: the text goes to a temporary file beside `path`
// (named for the process and the call, so concurrent writers never share one), then a rename.
#pragma once
#include <filesystem>
#include <string>

#include "engine/api/result.hpp"

namespace dsa {

// Errors name the file.
Result<void> write_file_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace dsa
