// The safety policy every tool applies before acting: the work-dir jail for paths and the approval
// mode for writes and commands. Both answer with a Result whose error text is the observation the
// model sees, so a refused action reads the same whichever tool was refused.
#pragma once
#include <filesystem>
#include <string>

#include "engine/api/result.hpp"
#include "tools/tool.hpp"

namespace dsa {

// Resolves a path given by the model (absolute, or relative to ctx.workdir) with symlinks followed
// (weakly_canonical: the existing prefix is resolved, the rest normalised) and refuses it unless
// it lies inside the resolved work dir. Escapes through "../" and through symlinks are both refused.
Result<std::filesystem::path> resolve_in_workdir(const ToolContext& ctx, const std::string& path);

// The path relative to the resolved work dir, as shown to the model ("." for the work dir itself).
std::string display_path(const ToolContext& ctx, const std::filesystem::path& resolved);

enum class ActionKind { write, command };

// Decides whether an action may run under ctx.approval: auto runs everything; read_only refuses
// writes and commands; ask calls ctx.ask(description) and refuses when it says no or is absent.
// description is one line, e.g. "write_file src/main.cpp (120 bytes)" or "shell: make test".
Result<void> approve(const ToolContext& ctx, ActionKind kind, const std::string& description);

}  // namespace dsa
