// The `shell` tool: bash -c COMMAND in the work dir, stdin closed, stdout and stderr captured as one
// stream, killed with its whole process group on timeout or cancel, optionally inside bubblewrap.
#include <string>

#include "tools/coding_tools.hpp"
#include "tools/policy.hpp"
#include "tools/process.hpp"
#include "tools/sandbox.hpp"

namespace dsa {

namespace {

Observation run_shell(const json& args, ToolContext& ctx) {
  std::string command = args.at("command").get<std::string>();
  if (auto ok = approve(ctx, ActionKind::command, "shell: " + command); !ok) return {ok.error().message, true};
  auto workdir = resolve_in_workdir(ctx, ".");
  if (!workdir) return {"shell: " + workdir.error().message, true};
  ProcessSpec spec;
  spec.argv = {"bash", "-c", command};
  spec.cwd = *workdir;
  spec.merge_stderr = true;
  if (ctx.sandbox) {
    if (auto ok = sandbox_available(); !ok) return {"shell: " + ok.error().message, true};
    spec.argv = sandboxed_argv(*workdir, spec.argv);
  }
  auto run = run_process(spec, "", ctx.timeout, ctx.cancel, ctx.max_output_bytes);
  if (!run) return {"shell: " + run.error().message, true};
  std::string text = run->out;
  if (!text.empty() && text.back() != '\n') text += '\n';
  if (run->timed_out) {
    text += "[timed out after " + std::to_string(ctx.timeout.count()) + " s; the command and everything it started were killed]";
  } else if (run->cancelled) {
    text += "[cancelled; the command and everything it started were killed]";
  } else {
    text += "[" + run->status.describe() + "]";
  }
  bool failed = run->timed_out || run->cancelled || run->status.exit_code != 0;
  return {text, failed, 0, run->out_truncated};
}

}  // namespace

std::unique_ptr<Tool> make_shell_tool() {
  ToolSpec spec{"shell",
                "Run a bash command in the work dir and return its output (stdout and stderr together) and exit "
                "code. stdin is closed, so interactive commands fail instead of waiting. The command and "
                "everything it started are killed at the timeout; background processes do not outlive the call.",
                json::parse(R"({"type": "object",
                  "properties": {"command": {"type": "string", "description": "The bash command line to run."}},
                  "required": ["command"]})")};
  return make_tool(std::move(spec), run_shell);
}

}  // namespace dsa
