// Strict prompt templates: `{{name}}` variables, embedded defaults overridable from a directory.
//
// Syntax: `{{name}}` (name = [A-Za-z_][A-Za-z0-9_]*, no spaces) is replaced by the variable's value;
// `{{{{` writes a literal `{{`. Anything else that opens with `{{` (an unclosed or malformed
// variable) is an error, and so is a variable the caller did not supply. Values are inserted as
// they are: they are never themselves expanded. Variables the caller supplies but the template
// does not use are allowed, so an override may leave out what it does not need. A template file's
// final newline is not part of the template.
//
// Errors are one line naming the template and the variable, e.g.
//   "prompt template 'system_coding': unknown variable 'workdir' (offset 120)".
// This module uses only the standard library (see architecture.md), hence the `std::string* err`
// convention of engine/api/types.hpp instead of Result.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace dsa::prompts {

using Vars = std::map<std::string, std::string, std::less<>>;

// Renders `text` (template `name`, used only in error messages) with `vars`.
std::optional<std::string> render_template(std::string_view name, std::string_view text, const Vars& vars,
                                           std::string* err);

// The set of templates a run uses: the embedded ones (prompts/templates/*.txt, names without
// `.txt`), each replaced by `<dir>/<name>.txt` when loaded with an override directory.
class PromptSet {
 public:
  // The embedded templates only.
  PromptSet();

  // Embedded templates with overrides from `dir` (`--prompts-dir`). Errors: `dir` is not a
  // directory, an override file cannot be read, or a `*.txt` in `dir` has no embedded counterpart
  // (most likely a misspelt name that would otherwise be silently ignored).
  static std::optional<PromptSet> with_overrides(const std::filesystem::path& dir, std::string* err);

  // The template text, or nullopt when no template has that name.
  std::optional<std::string_view> text(std::string_view name) const;

  // Renders template `name`. Errors: no such template, or render_template's errors.
  std::optional<std::string> render(std::string_view name, const Vars& vars, std::string* err) const;

  // Where template `name` came from: "embedded" or the override file's path.
  std::string origin(std::string_view name) const;

 private:
  struct Entry {
    std::string text;
    std::string origin;
  };
  std::map<std::string, Entry, std::less<>> templates_;
};

}  // namespace dsa::prompts
