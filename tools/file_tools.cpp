// The file tools: read_file (numbered lines, line ranges, binary detection, size cap), write_file
// and edit_file (one exact, unique replacement). Paths are jailed to the work dir; writes go
// through the approval policy.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "tools/coding_tools.hpp"
#include "tools/policy.hpp"

namespace dsa {

namespace fs = std::filesystem;

namespace {

// Larger files are refused by read_file and edit_file: a model should grep or read a range with
// the shell instead of pulling megabytes into its context.
constexpr uintmax_t kMaxFileBytes = 10u << 20;

Result<std::string> read_whole(const fs::path& p, const std::string& shown) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return make_error(shown + ": no such file");
  if (fs::is_directory(p, ec)) return make_error(shown + ": is a directory");
  uintmax_t size = fs::file_size(p, ec);
  if (ec) return make_error(shown + ": " + ec.message());
  if (size > kMaxFileBytes)
    return make_error(shown + ": " + std::to_string(size) + " bytes, over the " + std::to_string(kMaxFileBytes) +
                      "-byte limit; use grep or the shell to read part of it");
  std::ifstream f(p, std::ios::binary);
  if (!f) return make_error(shown + ": cannot open for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<void> write_whole(const fs::path& p, const std::string& shown, const std::string& text) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  if (ec) return make_error(shown + ": cannot create its directory: " + ec.message());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) return make_error(shown + ": cannot open for writing");
  f << text;
  f.close();
  if (!f) return make_error(shown + ": write failed");
  return {};
}

bool looks_binary(std::string_view data) { return data.substr(0, 8192).find('\0') != std::string_view::npos; }

size_t count_lines(std::string_view s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')) + (!s.empty() && s.back() != '\n' ? 1 : 0);
}

Observation read_file(const json& args, ToolContext& ctx) {
  std::string path = args.at("path").get<std::string>();
  auto p = resolve_in_workdir(ctx, path);
  if (!p) return {"read_file: " + p.error().message, true};
  auto data = read_whole(*p, path);
  if (!data) return {"read_file: " + data.error().message, true};
  if (looks_binary(*data)) return {"read_file: " + path + ": binary file (" + std::to_string(data->size()) + " bytes), not shown", true};
  int64_t first = args.value("offset", int64_t{1});
  int64_t limit = args.value("limit", int64_t{0});
  if (first < 1) return {"read_file: offset must be 1 or more (lines are numbered from 1)", true};
  if (limit < 0) return {"read_file: limit must not be negative", true};
  int64_t n_lines = static_cast<int64_t>(count_lines(*data));
  if (n_lines == 0) return {path + " is empty"};
  if (first > n_lines) return {"read_file: " + path + " has " + std::to_string(n_lines) + " lines; offset " + std::to_string(first) + " is past the end", true};
  // The limit cut to the file first: first + limit - 1 could pass INT64_MAX.
  int64_t last = limit ? std::min(n_lines, first + std::min(limit - 1, n_lines)) : n_lines;
  std::string out;
  std::istringstream in(*data);
  std::string line;
  char num[32];
  for (int64_t i = 1; i <= last && std::getline(in, line); ++i) {
    if (i < first) continue;
    std::snprintf(num, sizeof num, "%6lld\t", static_cast<long long>(i));
    out += num + line + "\n";
  }
  if (first > 1 || last < n_lines)
    out += "[lines " + std::to_string(first) + "-" + std::to_string(last) + " of " + std::to_string(n_lines) + "]";
  return {out};
}

Observation write_file(const json& args, ToolContext& ctx) {
  std::string path = args.at("path").get<std::string>();
  std::string content = args.at("content").get<std::string>();
  auto p = resolve_in_workdir(ctx, path);
  if (!p) return {"write_file: " + p.error().message, true};
  std::string shown = display_path(ctx, *p);
  if (auto ok = approve(ctx, ActionKind::write, "write_file " + shown + " (" + std::to_string(content.size()) + " bytes)"); !ok)
    return {ok.error().message, true};
  std::error_code ec;
  if (fs::is_directory(*p, ec)) return {"write_file: " + shown + ": is a directory", true};
  bool existed = fs::exists(*p, ec);
  if (auto ok = write_whole(*p, shown, content); !ok) return {"write_file: " + ok.error().message, true};
  return {std::string(existed ? "overwrote " : "created ") + shown + " (" + std::to_string(content.size()) + " bytes, " +
          std::to_string(count_lines(content)) + " lines)"};
}

Observation edit_file(const json& args, ToolContext& ctx) {
  std::string path = args.at("path").get<std::string>();
  std::string old_text = args.at("old_text").get<std::string>();
  std::string new_text = args.at("new_text").get<std::string>();
  auto p = resolve_in_workdir(ctx, path);
  if (!p) return {"edit_file: " + p.error().message, true};
  std::string shown = display_path(ctx, *p);
  if (old_text.empty()) return {"edit_file: old_text is empty; give the exact text to replace (use write_file to create a file)", true};
  if (old_text == new_text) return {"edit_file: old_text and new_text are the same; nothing to do", true};
  auto data = read_whole(*p, shown);
  if (!data) return {"edit_file: " + data.error().message, true};
  size_t at = data->find(old_text);
  if (at == std::string::npos)
    return {"edit_file: old_text not found in " + shown + " (it must match exactly, including whitespace and indentation)", true};
  size_t count = 0;
  for (size_t i = at; i != std::string::npos; i = data->find(old_text, i + old_text.size())) ++count;
  if (count > 1)
    return {"edit_file: old_text occurs " + std::to_string(count) + " times in " + shown +
                "; include more surrounding lines so that it matches exactly once",
            true};
  if (auto ok = approve(ctx, ActionKind::write, "edit_file " + shown); !ok) return {ok.error().message, true};
  size_t line = 1 + static_cast<size_t>(std::count(data->begin(), data->begin() + static_cast<std::ptrdiff_t>(at), '\n'));
  data->replace(at, old_text.size(), new_text);
  if (auto ok = write_whole(*p, shown, *data); !ok) return {"edit_file: " + ok.error().message, true};
  return {"edited " + shown + ": replaced " + std::to_string(count_lines(old_text)) + " line(s) at line " + std::to_string(line) +
          " with " + std::to_string(count_lines(new_text)) + " line(s)"};
}

}  // namespace

std::unique_ptr<Tool> make_read_file_tool() {
  return make_tool({"read_file",
                    "Read a text file from the work dir, with line numbers. Use offset and limit to read part "
                    "of a long file.",
                    json::parse(R"({"type": "object", "properties": {
                      "path": {"type": "string", "description": "File path, relative to the work dir."},
                      "offset": {"type": "integer", "description": "First line to show (1-based; default 1)."},
                      "limit": {"type": "integer", "description": "Number of lines to show (default: to the end)."}},
                      "required": ["path"]})")},
                   read_file);
}

std::unique_ptr<Tool> make_write_file_tool() {
  return make_tool({"write_file",
                    "Create or overwrite a file in the work dir with the given content (parent directories are "
                    "created).",
                    json::parse(R"({"type": "object", "properties": {
                      "path": {"type": "string", "description": "File path, relative to the work dir."},
                      "content": {"type": "string", "description": "The whole new content of the file."}},
                      "required": ["path", "content"]})")},
                   write_file);
}

std::unique_ptr<Tool> make_edit_file_tool() {
  return make_tool({"edit_file",
                    "Replace one exact occurrence of old_text with new_text in a file. old_text must match the "
                    "file exactly (whitespace included) and occur exactly once; add surrounding lines to make it "
                    "unique.",
                    json::parse(R"({"type": "object", "properties": {
                      "path": {"type": "string", "description": "File path, relative to the work dir."},
                      "old_text": {"type": "string", "description": "The exact text to replace."},
                      "new_text": {"type": "string", "description": "The text to put in its place."}},
                      "required": ["path", "old_text", "new_text"]})")},
                   edit_file);
}

}  // namespace dsa
