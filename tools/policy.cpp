// Work-dir jail and approval modes (see policy.hpp).
#include "tools/policy.hpp"

namespace dsa {

namespace fs = std::filesystem;

namespace {

bool is_within(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (r->empty()) continue;  // the trailing "" of a root that ends in '/'
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

}  // namespace

Result<fs::path> resolve_in_workdir(const ToolContext& ctx, const std::string& path) {
  if (path.empty()) return make_error("path is empty");
  std::error_code ec;
  fs::path root = fs::weakly_canonical(ctx.workdir, ec);
  if (ec) return make_error("work dir " + ctx.workdir.string() + ": " + ec.message());
  fs::path given(path);
  fs::path full = fs::weakly_canonical(given.is_absolute() ? given : root / given, ec);
  if (ec) return make_error(path + ": " + ec.message());
  // weakly_canonical leaves a symbolic link to a missing file as it is (its target does not
  // exist): followed here, since a write through it would create the target, wherever it points.
  for (int hops = 0; fs::is_symlink(fs::symlink_status(full, ec)); ++hops) {
    if (hops == 40) return make_error(path + ": too many levels of symbolic links");
    const fs::path target = fs::read_symlink(full, ec);
    if (ec) return make_error(path + ": " + ec.message());
    full = fs::weakly_canonical(target.is_absolute() ? target : full.parent_path() / target, ec);
    if (ec) return make_error(path + ": " + ec.message());
  }
  if (!is_within(root, full))
    return make_error(path + ": outside the work dir " + root.string() + " (refused)");
  return full;
}

std::string display_path(const ToolContext& ctx, const fs::path& resolved) {
  std::error_code ec;
  fs::path rel = resolved.lexically_relative(fs::weakly_canonical(ctx.workdir, ec));
  return rel.empty() ? resolved.string() : rel.string();
}

Result<void> approve(const ToolContext& ctx, ActionKind kind, const std::string& description) {
  const char* what = kind == ActionKind::write ? "writes" : "commands";
  switch (ctx.approval) {
    case ApprovalMode::auto_approve:
      return {};
    case ApprovalMode::read_only:
      return make_error(std::string("refused: read-only mode allows no ") + what + " (" + description + ")");
    case ApprovalMode::ask:
      if (ctx.ask && ctx.ask(description)) return {};
      return make_error("refused: the user did not approve " + description);
  }
  return {};
}

}  // namespace dsa
