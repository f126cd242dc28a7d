// The flags shared by `run` and `chat` (cli.md): backend, tools, safety, context management, limits,
// sampling and outputs. Every flag can also come from a JSON config file (`--config F`, else
// ~/.config/dsagent/config.json when it exists) under the flag's long name without dashes
// ("api-model" or "api_model"); flags given on the command line win. The config file may also
// hold "mcpServers" (the usual MCP configuration; --mcp-config replaces it) and "toolSpecs"
// (command tool spec files, like --tool-spec).
//
// A local model directory may hold its own defaults in dsagent.json (same keys; relative corpus,
// prompts-dir, tool-spec and mcp-config paths resolve against the model directory). Precedence:
// command line > config file > the model's dsagent.json > the built-in defaults below. Without
// --model or --api, the default model directory is used (default_model_dir()).
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/engine_flags.hpp"
#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa::cli {

struct AgentOptions {
  // backend
  std::string model_dir;    // --model DIR: the local engine
  std::string api_url;      // --api URL: an OpenAI-compatible server
  std::string api_model;    // --api-model NAME
  std::string api_key_env;  // --api-key-env VAR (default DEEPSEEK_API_KEY, then OPENAI_API_KEY)
  double api_idle_timeout_s = 300;  // --api-idle-timeout: a request with no byte for this long is tried again
  int api_retries = 5;              // --api-retries: attempts after the first one
  // tools
  std::string tools = "coding";         // comma list: shell, files, search, coding, browse, none, or tool names
  std::string mcp_config;               // --mcp-config F
  std::string corpus;                   // --corpus DB|JSONL: the offline corpus of the browse tools
  std::string searxng;                  // --searxng URL: a SearXNG instance for the browse tools
  std::string browse_tools = "deepseek";  // --browse-tools deepseek | browsecomp-plus
  std::vector<std::string> tool_specs;  // --tool-spec F (repeatable)
  std::string workdir;                  // default: the current directory
  std::string approval = "auto";        // auto | ask | read-only
  int tool_timeout_s = 120;
  bool sandbox = false;
  // model
  std::string attention = "sparse";  // --attention sparse | dense: the local engine's attention
  EngineFlags engine;                // --device, --gpus, --ranks, --launch: where the local engine runs
  std::string thinking = "on";
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int64_t max_tokens = 32768;  // per model turn
  // context management
  int64_t context_window = 0;  // 0: what the backend reports, else 131072
  double context_trigger = 0.8;
  std::string context_strategy = "discard-all";
  int max_resets = 5;
  // loop limits
  int max_steps = 200;
  int64_t max_total_tokens = 0;  // prompt + completion tokens over the run, 0 = unlimited
  double time_limit_s = 0;       // wall time of one task, 0 = unlimited
  int max_format_errors = 3;     // consecutive malformed outputs before the run stops with `error`
  // outputs
  bool json_events = false;
  std::string trajectory;
  std::string prompts_dir;
  std::string config_file;
  bool quiet = false;  // human output: no thinking, no tool results

  // From the config file (not flags).
  json mcp_servers;  // {"name": {"command", "args", "env"}} or null
  json web_search;   // "webSearch": a search API for the browse tools (tools/browse/web_backend.hpp)
};

// Adds the shared flags to a subcommand, bound to `opts`.
void add_agent_flags(CLI::App& cmd, AgentOptions& opts);

// After parsing: fills every flag not given on the command line from the config file (`--config`,
// else the user's default one when present), picks the default model when no backend is given,
// then fills what is still unset from the model directory's dsagent.json, and checks what CLI11
// cannot (the backend combination). Errors name the config file and the key.
Result<void> finish_agent_options(CLI::App& cmd, AgentOptions& opts);

// The config file the user gets without --config: $XDG_CONFIG_HOME or ~/.config, dsagent/config.json.
std::filesystem::path default_config_path();

// The model directory used without --model or --api: $DSAGENT_MODEL when set, else the embedded
// demo model of the source tree (DSA_DEFAULT_MODEL_DIR, set by CMake). It may not exist.
std::filesystem::path default_model_dir();

}  // namespace dsa::cli
