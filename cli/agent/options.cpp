// The shared run/chat flags and the config file (see options.hpp).
#include "cli/agent/options.hpp"

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/flag_ranges.hpp"
#include "engine/loader/json_text.hpp"

namespace dsa::cli {

void add_agent_flags(CLI::App& cmd, AgentOptions& o) {
  const std::string backend = "Backend", tools = "Tools", context = "Context", limits = "Limits", out = "Output";
  cmd.add_option("--model", o.model_dir, "checkpoint directory for the local engine")->group(backend);
  cmd.add_option("--api", o.api_url, "OpenAI-compatible server URL (http://host:port[/v1])")->group(backend);
  cmd.add_option("--api-model", o.api_model, "model name on the server")->group(backend);
  cmd.add_option("--api-key-env", o.api_key_env, "environment variable holding the API key")->group(backend);
  cmd.add_option("--api-idle-timeout", o.api_idle_timeout_s,
                 "seconds a request may go without a byte from the server before it is tried again (default 300: "
                 "thinking can be slow)")
      ->check(CLI::Range(1.0, 86400.0))
      ->group(backend);
  cmd.add_option("--api-retries", o.api_retries, "attempts after a failed one (HTTP 429, 5xx, cut streams; default 5)")
      ->check(CLI::Range(0, 100))
      ->group(backend);

  cmd.add_option("--tools", o.tools,
                 "comma list: shell, files, search, coding (all of them), browse, calculator, none, or tool names")
      ->group(tools);
  cmd.add_option("--mcp-config", o.mcp_config, "MCP servers file ({\"mcpServers\": {...}})")->group(tools);
  cmd.add_option("--corpus", o.corpus,
                 "offline corpus for the browse tools: built by `dsagent index`, or a .jsonl of documents "
                 "(indexed on first use, cached in the temp dir)")
      ->group(tools);
  cmd.add_option("--searxng", o.searxng, "SearXNG instance URL for the browse tools (web search)")->group(tools);
  cmd.add_option("--browse-tools", o.browse_tools, "deepseek (search/open/find) or browsecomp-plus (search/get_document)")
      ->check(CLI::IsMember({"deepseek", "browsecomp-plus"}))
      ->group(tools);
  cmd.add_option("--tool-spec", o.tool_specs, "command tool spec file (repeatable)")->allow_extra_args(false)->group(tools);
  cmd.add_option("--workdir", o.workdir, "directory the tools work in (default: the current one)")->group(tools);
  cmd.add_option("--approval", o.approval, "auto, ask (before writes and commands) or read-only")
      ->check(CLI::IsMember({"auto", "ask", "read-only"}))
      ->group(tools);
  cmd.add_option("--tool-timeout", o.tool_timeout_s, "seconds per tool call")
      ->check(CLI::Range(1, INT_MAX))
      ->group(tools);
  cmd.add_flag("--sandbox", o.sandbox, "run shell commands inside bubblewrap")->group(tools);

  cmd.add_option("--attention", o.attention, "local engine: sparse (DSA top-k, as trained) or dense (full causal)")
      ->check(CLI::IsMember({"sparse", "dense"}))
      ->group(backend);
  add_engine_flags(cmd, o.engine, backend);
  cmd.add_option("--thinking", o.thinking, "thinking mode")->check(CLI::IsMember({"on", "off"}))->group(backend);
  cmd.add_option("--temperature", o.temperature, "sampling temperature (0 = greedy)")
      ->check(real_range(0, 100))
      ->group(backend);
  cmd.add_option("--top-p", o.top_p, "nucleus sampling mass")->check(real_range(0, 1))->group(backend);
  cmd.add_option("--seed", o.seed, "sampling seed")->group(backend);
  cmd.add_option("--max-tokens", o.max_tokens, "tokens per model turn")
      ->check(CLI::Range(int64_t(1), int64_t(INT32_MAX)))
      ->group(backend);

  cmd.add_option("--context-window", o.context_window, "tokens (default: the backend's, else 131072)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->group(context);
  cmd.add_option("--context-trigger", o.context_trigger, "fraction of the window that triggers the strategy")
      ->check(CLI::Range(0.05, 1.0))
      ->group(context);
  cmd.add_option("--context-strategy", o.context_strategy, "none, summary, discard-75 or discard-all")
      ->check(CLI::IsMember({"none", "summary", "discard-75", "discard-all"}))
      ->group(context);
  cmd.add_option("--max-resets", o.max_resets, "context resets before the run stops")
      ->check(CLI::Range(0, INT_MAX))
      ->group(context);

  cmd.add_option("--max-steps", o.max_steps, "model calls before the run stops")
      ->check(CLI::Range(1, INT_MAX))
      ->group(limits);
  cmd.add_option("--max-total-tokens", o.max_total_tokens, "prompt + completion tokens over the run (0 = no limit)")
      ->check(CLI::Range(int64_t(0), INT64_MAX))
      ->group(limits);
  cmd.add_option("--time-limit", o.time_limit_s, "seconds of wall time (0 = no limit)")
      ->check(real_range(0, 1e9))
      ->group(limits);
  cmd.add_option("--max-format-errors", o.max_format_errors, "consecutive malformed model outputs before giving up")
      ->check(CLI::Range(1, INT_MAX))
      ->group(limits);

  cmd.add_flag("--json", o.json_events, "JSON-lines events on stdout")->group(out);
  cmd.add_option("--trajectory", o.trajectory, "ATIF trajectory file, written after every step")->group(out);
  cmd.add_option("--prompts-dir", o.prompts_dir, "directory of prompt templates overriding the built-in ones")
      ->group(out);
  cmd.add_option("--config", o.config_file, "JSON file holding any of these flags")->group(out);
  cmd.add_flag("-q,--quiet", o.quiet, "human output without thinking and tool results")->group(out);
}

std::filesystem::path default_config_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
    return std::filesystem::path(xdg) / "dsagent" / "config.json";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".config" / "dsagent" / "config.json";
  return {};
}

namespace {

Result<json> read_config(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(path.string() + ": cannot open config file");
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (!j.is_object()) return make_error(path.string() + ": a config file holds a JSON object");
    return j;
  } catch (const json::exception& e) {  // a syntax error, or a number past a double (1e400)
    return make_error(path.string() + ": not valid JSON (" + printable(e.what(), 300) + ")");
  }
}

std::string normalise_key(std::string key) {
  for (auto& c : key)
    if (c == '_') c = '-';
  return key;
}

// The option of `cmd` whose long name is `key`, or null.
CLI::Option* find_option(CLI::App& cmd, const std::string& key) {
  for (CLI::Option* o : cmd.get_options()) {
    for (const auto& name : o->get_lnames())
      if (name == key) return o;
  }
  return nullptr;
}

// One layer of defaults: the config file, or a model directory's dsagent.json. A lower layer only
// fills what the layers above (the command line, then the config file) left unset.
struct ConfigLayer {
  std::string source;               // the file, for errors
  std::filesystem::path model_dir;  // set for a model's dsagent.json: its relative paths resolve here
};

// Keys naming files that ship with a model (its corpus, prompts, tools), so a model directory's
// dsagent.json can name them relative to itself.
bool is_model_file_key(const std::string& key) {
  return key == "corpus" || key == "prompts-dir" || key == "tool-spec" || key == "tool-specs" || key == "mcp-config";
}

std::string resolve_in(const ConfigLayer& layer, const std::string& key, const std::string& value) {
  if (layer.model_dir.empty() || !is_model_file_key(key) || value.empty()) return value;
  std::filesystem::path p(value);
  return p.is_absolute() ? value : (layer.model_dir / p).string();
}

Result<void> apply_config(CLI::App& cmd, AgentOptions& opts, const json& config, const ConfigLayer& layer) {
  const std::string& source = layer.source;
  const bool model_layer = !layer.model_dir.empty();
  for (const auto& [raw_key, value] : config.items()) {
    if (raw_key == "mcpServers") {
      if (!model_layer || opts.mcp_servers.is_null()) opts.mcp_servers = value;
      continue;
    }
    if (raw_key == "webSearch" || raw_key == "web_search" || raw_key == "web-search") {
      if (!model_layer || opts.web_search.is_null()) opts.web_search = value;
      continue;
    }
    const std::string key = normalise_key(raw_key);
    if (key == "tool-specs" || key == "toolSpecs") {
      if (!value.is_array()) return make_error(source + ": " + raw_key + ": expected an array of file names");
      if (find_option(cmd, "tool-spec")->count() > 0 || (model_layer && !opts.tool_specs.empty())) continue;
      for (const auto& v : value) {
        if (!v.is_string()) return make_error(source + ": " + raw_key + ": expected an array of file names");
        opts.tool_specs.push_back(resolve_in(layer, key, v.get<std::string>()));
      }
      continue;
    }
    if (key == "config" || key == "help") return make_error(source + ": " + raw_key + ": not allowed in a config file");
    if (model_layer && (key == "model" || key == "api"))
      return make_error(source + ": " + raw_key + ": a model's dsagent.json cannot choose the backend");
    // What the layers above set outside the flags (toolSpecs, mcpServers) wins over the model too.
    if (model_layer && ((key == "tool-spec" && !opts.tool_specs.empty()) ||
                        (key == "mcp-config" && !opts.mcp_servers.is_null())))
      continue;
    // The backend is one choice: --model on the command line sets aside the config's server, and
    // --api its model directory (the config's api-model and key variable still serve --api).
    const auto given = [&](const char* flag) { return find_option(cmd, flag)->count() > 0; };
    if (given("model") && (key == "api" || key == "api-model" || key == "api-key-env")) continue;
    if (given("api") && key == "model") continue;
    CLI::Option* o = find_option(cmd, key);
    if (!o) return make_error(source + ": unknown key '" + raw_key + "'");
    if (o->count() > 0) continue;  // the command line (or a layer above) wins
    std::vector<std::string> values;
    auto add = [&](const json& v) -> bool {
      if (v.is_string()) values.push_back(resolve_in(layer, key, v.get<std::string>()));
      else if (v.is_boolean()) values.push_back(v.get<bool>() ? "true" : "false");
      else if (v.is_number()) values.push_back(v.dump());
      else return false;
      return true;
    };
    bool ok = true;
    if (value.is_array()) {
      for (const auto& v : value) ok = ok && add(v);
    } else {
      ok = add(value);
    }
    if (!ok) return make_error(source + ": " + raw_key + ": expected a string, number or boolean");
    try {
      for (auto& v : values) o->add_result(v);
      o->run_callback();
    } catch (const CLI::Error& e) {
      return make_error(source + ": " + raw_key + ": " + e.what());
    }
  }
  return {};
}

// The model run/chat/batch use when neither --model nor --api is given; an error names where it
// looked.
Result<std::string> find_default_model() {
  const std::filesystem::path dir = default_model_dir();
  std::error_code ec;
  if (!dir.empty() && std::filesystem::is_regular_file(dir / "config.json", ec)) return dir.string();
  return make_error("no backend: give --model DIR or --api URL --api-model NAME (the default model " +
                    (dir.empty() ? std::string("is not set") : dir.string() + " was not found") + ")");
}

}  // namespace

std::filesystem::path default_model_dir() {
  if (const char* env = std::getenv("DSAGENT_MODEL"); env && *env) return env;
#ifdef DSA_DEFAULT_MODEL_DIR
  return DSA_DEFAULT_MODEL_DIR;
#else
  return {};
#endif
}

Result<void> finish_agent_options(CLI::App& cmd, AgentOptions& opts) {
  std::filesystem::path config = opts.config_file;
  if (config.empty()) {
    std::error_code ec;
    auto def = default_config_path();
    if (!def.empty() && std::filesystem::exists(def, ec)) config = def;
  }
  if (!config.empty()) {
    DSA_TRY(j, read_config(config));
    if (auto ok = apply_config(cmd, opts, j, {config.string(), {}}); !ok) return ok.error();
  }
  if (!opts.model_dir.empty() && !opts.api_url.empty()) return make_error("give either --model or --api, not both");
  if (opts.model_dir.empty() && opts.api_url.empty()) {
    DSA_TRY(dir, find_default_model());
    opts.model_dir = dir;
  }
  if (!opts.api_url.empty() && opts.api_model.empty()) return make_error("--api needs --api-model NAME");
  if (!opts.model_dir.empty()) {
    // The model's own defaults (its tools, corpus, prompts), below the command line and config file.
    const std::filesystem::path model_config = std::filesystem::path(opts.model_dir) / "dsagent.json";
    std::error_code ec;
    if (std::filesystem::is_regular_file(model_config, ec)) {
      DSA_TRY(j, read_config(model_config));
      if (auto ok = apply_config(cmd, opts, j, {model_config.string(), opts.model_dir}); !ok) return ok.error();
    }
  }
  return {};
}

}  // namespace dsa::cli
