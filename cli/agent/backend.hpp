// Wiring for run/chat: builds the Llm, the tool registry and the tool context from AgentOptions.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/agent/options.hpp"
#include "engine/api/llm.hpp"
#include "engine/api/result.hpp"
#include "engine/model/open_model.hpp"
#include "tools/tool.hpp"

namespace dsa::cli {

// --api URL --api-model NAME: RemoteLlm; --model DIR: the local engine, its caches sized for
// `concurrency` requests at a full context at once (batch --workers).
Result<std::unique_ptr<Llm>> make_llm(const AgentOptions& opts, int concurrency = 1);

// The local engine for --model DIR.
Result<std::unique_ptr<Llm>> make_local_llm(const std::filesystem::path& model_dir, int64_t max_context,
                                            AttentionMode attention, int concurrency = 1,
                                            const OpenOptions& engine = {});

// --attention sparse|dense.
AttentionMode attention_mode(const AgentOptions& opts);

// Adds the tools --tools selects (shell, files = read_file/write_file/edit_file, search =
// grep/glob, coding = all six, browse, calculator, none, or single tool names), then MCP servers (--mcp-config or the
// config file's mcpServers) and command tools (--tool-spec), in the order given: the order of the
// tool definitions in the prompt. `browse`, when set, adds the browsing tools where "browse" stands
// in the list (a batch gives each task its own browser); else they come from --corpus or the web.
// Errors name the unknown group or file. Returns the warnings for the caller to show (an MCP
// server that failed at start-up and was skipped).
using BrowseAdder = std::function<void(ToolRegistry&)>;
Result<std::vector<std::string>> add_selected_tools(ToolRegistry& registry, const AgentOptions& opts,
                                                    const BrowseAdder& browse = {});

// Work dir (checked to exist, made absolute), approval mode, timeout and sandbox from the flags.
// The `ask` callback is the caller's (chat prompts on the terminal).
Result<ToolContext> make_tool_context(const AgentOptions& opts);

// Generation options from the sampling flags.
GenOptions make_gen_options(const AgentOptions& opts);

}  // namespace dsa::cli
