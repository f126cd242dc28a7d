// The search tools: grep (PCRE2 regex over the files under a path, optional file-name glob,
// capped matches) and glob (file names matching a pattern). Both walk the tree in sorted order
// without following symlinks and skip .git directories, so results are stable and stay in the jail.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <fnmatch.h>
#include <pcre2.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tools/coding_tools.hpp"
#include "tools/policy.hpp"

namespace dsa {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxGrepMatches = 200;
constexpr size_t kMaxGlobResults = 500;
constexpr size_t kMaxShownLineBytes = 300;       // a matching line longer than this is cut
constexpr uintmax_t kMaxGrepFileBytes = 10u << 20;  // larger files are skipped

std::vector<std::string> split_path(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '/') {
      if (i > start) out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// Segment-wise glob: "*", "?" and "[...]" within one path segment (fnmatch), "**" for any number
// of segments.
bool match_segments(const std::vector<std::string>& pat, size_t pi, const std::vector<std::string>& path, size_t qi) {
  if (pi == pat.size()) return qi == path.size();
  if (pat[pi] == "**") {
    for (size_t k = qi; k <= path.size(); ++k)
      if (match_segments(pat, pi + 1, path, k)) return true;
    return false;
  }
  return qi < path.size() && fnmatch(pat[pi].c_str(), path[qi].c_str(), 0) == 0 &&
         match_segments(pat, pi + 1, path, qi + 1);
}

// A pattern without '/' matches the file name at any depth ("*.cpp"); one with '/' matches the path
// relative to the search root ("src/**/*.hpp").
bool glob_matches(const std::string& pattern, const fs::path& rel) {
  std::string r = rel.generic_string();
  if (pattern.find('/') == std::string::npos) return fnmatch(pattern.c_str(), rel.filename().c_str(), 0) == 0;
  return match_segments(split_path(pattern), 0, split_path(r), 0);
}

// Regular files under root (root itself when it is a file), sorted, .git skipped.
std::vector<fs::path> files_under(const fs::path& root) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(root, ec)) return {root};
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Pcre2Code {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct Pcre2Match {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

Observation grep(const json& args, ToolContext& ctx) {
  std::string pattern = args.at("pattern").get<std::string>();
  std::string path = args.value("path", std::string("."));
  std::string file_glob = args.value("glob", std::string());
  auto root = resolve_in_workdir(ctx, path);
  if (!root) return {"grep: " + root.error().message, true};
  std::error_code ec;
  if (!fs::exists(*root, ec)) return {"grep: " + path + ": no such file or directory", true};

  uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  if (args.value("ignore_case", false)) options |= PCRE2_CASELESS;
  int err_code = 0;
  PCRE2_SIZE err_offset = 0;
  std::unique_ptr<pcre2_code, Pcre2Code> re(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                                          options, &err_code, &err_offset, nullptr));
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err_code, msg, sizeof msg);
    return {"grep: invalid regex at offset " + std::to_string(err_offset) + ": " + reinterpret_cast<char*>(msg), true};
  }
  pcre2_jit_compile(re.get(), PCRE2_JIT_COMPLETE);  // a speed-up only; matching works without it
  std::unique_ptr<pcre2_match_data, Pcre2Match> md(pcre2_match_data_create_from_pattern(re.get(), nullptr));

  std::string out;
  size_t n_matches = 0, n_files = 0;
  bool capped = false;
  for (const fs::path& file : files_under(*root)) {
    if (!file_glob.empty() && !glob_matches(file_glob, file.lexically_relative(*root))) continue;
    if (fs::file_size(file, ec) > kMaxGrepFileBytes || ec) continue;
    std::ifstream f(file, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string data = ss.str();
    if (data.substr(0, 8192).find('\0') != std::string::npos) continue;  // binary
    std::string shown = display_path(ctx, file);
    bool file_counted = false;
    // Line by line so a match is reported with its line number and '^'/'$' anchor per line.
    size_t line_no = 0;
    for (size_t start = 0; start < data.size() && !capped;) {
      size_t end = data.find('\n', start);
      if (end == std::string::npos) end = data.size();
      ++line_no;
      std::string_view line(data.data() + start, end - start);
      int rc = pcre2_match(re.get(), reinterpret_cast<PCRE2_SPTR>(line.data()), line.size(), 0, 0, md.get(), nullptr);
      if (rc >= 0) {
        if (!file_counted) ++n_files, file_counted = true;
        std::string text(line.substr(0, kMaxShownLineBytes));
        if (line.size() > kMaxShownLineBytes) text += " [...]";
        out += shown + ":" + std::to_string(line_no) + ": " + text + "\n";
        capped = ++n_matches >= kMaxGrepMatches;
      }
      start = end + 1;
    }
    if (capped) break;
  }
  if (n_matches == 0) return {"no matches for /" + pattern + "/ under " + path};
  if (capped) out += "[stopped at " + std::to_string(kMaxGrepMatches) + " matches; narrow the pattern, path or glob]";
  else out += "[" + std::to_string(n_matches) + " matches in " + std::to_string(n_files) + " files]";
  return {out};
}

Observation glob(const json& args, ToolContext& ctx) {
  std::string pattern = args.at("pattern").get<std::string>();
  std::string path = args.value("path", std::string("."));
  auto root = resolve_in_workdir(ctx, path);
  if (!root) return {"glob: " + root.error().message, true};
  std::error_code ec;
  if (!fs::is_directory(*root, ec)) return {"glob: " + path + ": not a directory", true};
  std::string out;
  size_t n = 0;
  for (const fs::path& file : files_under(*root)) {
    if (!glob_matches(pattern, file.lexically_relative(*root))) continue;
    if (n++ == kMaxGlobResults) {
      out += "[stopped at " + std::to_string(kMaxGlobResults) + " files; narrow the pattern]";
      break;
    }
    out += display_path(ctx, file) + "\n";
  }
  if (n == 0) return {"no files match " + pattern + " under " + path};
  return {out};
}

}  // namespace

std::unique_ptr<Tool> make_grep_tool() {
  return make_tool({"grep",
                    "Search file contents with a regular expression (PCRE2 syntax), line by line, under a path "
                    "in the work dir. Prints path:line: text for each matching line, at most " +
                        std::to_string(kMaxGrepMatches) + " matches. Binary files and .git are skipped.",
                    json::parse(R"({"type": "object", "properties": {
                      "pattern": {"type": "string", "description": "The regular expression."},
                      "path": {"type": "string", "description": "File or directory to search (default: the work dir)."},
                      "glob": {"type": "string", "description": "Only files matching this glob, e.g. \"*.py\" (name at any depth) or \"src/**/*.cpp\" (path)."},
                      "ignore_case": {"type": "boolean", "description": "Case-insensitive matching."}},
                      "required": ["pattern"]})")},
                   grep);
}

std::unique_ptr<Tool> make_glob_tool() {
  return make_tool({"glob",
                    "List files whose path matches a glob pattern, sorted. \"*\" and \"?\" match within a name, "
                    "\"**\" any number of directories; a pattern without \"/\" matches the file name at any depth.",
                    json::parse(R"({"type": "object", "properties": {
                      "pattern": {"type": "string", "description": "The glob, e.g. \"*.md\" or \"src/**/*.hpp\"."},
                      "path": {"type": "string", "description": "Directory to search (default: the work dir)."}},
                      "required": ["pattern"]})")},
                   glob);
}

}  // namespace dsa
