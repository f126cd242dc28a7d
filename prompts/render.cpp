// Strict `{{var}}` rendering and the embedded/override template set (see render.hpp).
#include "prompts/render.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include "prompts/embedded.hpp"

namespace dsa::prompts {

namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

std::nullopt_t fail(std::string* err, std::string_view name, const std::string& what, size_t offset) {
  if (err) *err = "prompt template '" + std::string(name) + "': " + what + " (offset " + std::to_string(offset) + ")";
  return std::nullopt;
}

// A text file's final newline ends the file, not the prompt.
std::string without_final_newline(std::string s) {
  if (s.empty() || s.back() != '\n') return s;
  s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

// The names of the variables `text` uses (its well-formed `{{name}}`s), read as render_template
// reads them.
std::vector<std::string> variables_of(std::string_view text) {
  std::vector<std::string> names;
  size_t i = 0;
  while ((i = text.find("{{", i)) != std::string_view::npos) {
    if (text.substr(i, 4) == "{{{{") {  // an escaped "{{"
      i += 4;
      continue;
    }
    size_t p = i + 2;
    while (p < text.size() && is_name_char(text[p])) ++p;
    if (p > i + 2 && text.substr(p, 2) == "}}") names.emplace_back(text.substr(i + 2, p - i - 2));
    i = p;
  }
  return names;
}

}  // namespace

std::optional<std::string> render_template(std::string_view name, std::string_view text, const Vars& vars,
                                           std::string* err) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    if (open == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, open - i));
    if (text.substr(open, 4) == "{{{{") {
      out.append("{{");
      i = open + 4;
      continue;
    }
    size_t p = open + 2;
    if (p >= text.size() || !is_name_start(text[p])) return fail(err, name, "malformed variable after '{{'", open);
    while (p < text.size() && is_name_char(text[p])) ++p;
    if (text.substr(p, 2) != "}}") return fail(err, name, "unclosed or malformed variable", open);
    const std::string_view var = text.substr(open + 2, p - open - 2);
    auto it = vars.find(var);
    if (it == vars.end()) return fail(err, name, "unknown variable '" + std::string(var) + "'", open);
    out.append(it->second);
    i = p + 2;
  }
  return out;
}

PromptSet::PromptSet() {
  for (const EmbeddedPrompt& p : embedded_prompts())
    templates_[std::string(p.name)] = Entry{without_final_newline(std::string(p.text)), "embedded"};
}

std::optional<PromptSet> PromptSet::with_overrides(const std::filesystem::path& dir, std::string* err) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (err) *err = "prompts directory '" + dir.string() + "' is not a directory";
    return std::nullopt;
  }
  PromptSet set;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto& path = entry.path();
    if (path.extension() != ".txt") continue;
    const std::string name = path.stem().string();
    auto it = set.templates_.find(name);
    if (it == set.templates_.end()) {
      if (err) *err = "prompts directory: '" + path.string() + "' does not override any template";
      return std::nullopt;
    }
    if (!std::filesystem::is_regular_file(path, ec)) {
      if (err) *err = "prompts directory: '" + path.string() + "' is not a regular file";
      return std::nullopt;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f.is_open()) {
      if (err) *err = "prompts directory: cannot read '" + path.string() + "'";
      return std::nullopt;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string text = without_final_newline(ss.str());
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      if (err) *err = "prompts directory: '" + path.string() + "' is empty";
      return std::nullopt;
    }
    // Checked now, with the variables the template is rendered with (the embedded one's), rather
    // than when it is first used, maybe many steps into a run.
    Vars known;
    for (const std::string& var : variables_of(it->second.text)) known[var] = "";
    std::string why;
    if (!render_template(path.string(), text, known, &why)) {
      if (err) *err = "prompts directory: " + why + "; the template takes only the variables of the embedded one";
      return std::nullopt;
    }
    it->second = Entry{std::move(text), path.string()};
  }
  if (ec) {
    if (err) *err = "prompts directory '" + dir.string() + "': " + ec.message();
    return std::nullopt;
  }
  return set;
}

std::optional<std::string_view> PromptSet::text(std::string_view name) const {
  auto it = templates_.find(name);
  if (it == templates_.end()) return std::nullopt;
  return std::string_view(it->second.text);
}

std::optional<std::string> PromptSet::render(std::string_view name, const Vars& vars, std::string* err) const {
  auto it = templates_.find(name);
  if (it == templates_.end()) {
    if (err) *err = "no prompt template named '" + std::string(name) + "'";
    return std::nullopt;
  }
  return render_template(name, it->second.text, vars, err);
}

std::string PromptSet::origin(std::string_view name) const {
  auto it = templates_.find(name);
  return it == templates_.end() ? std::string() : it->second.origin;
}

}  // namespace dsa::prompts
