// Builds the model backend, the tools and their context from the run/chat flags (see backend.hpp).
#include "cli/agent/backend.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "cli/agent/corpus_cache.hpp"
#include "engine/remote/remote_llm.hpp"
#include "engine/runtime/local_llm.hpp"
#include "tools/browse/browser.hpp"
#include "tools/browse/web_backend.hpp"
#include "tools/calculator_tool.hpp"
#include "tools/coding_tools.hpp"
#include "tools/command_plugin.hpp"
#include "tools/mcp.hpp"
#include "tools/sandbox.hpp"

namespace dsa::cli {

Result<std::unique_ptr<Llm>> make_local_llm(const std::filesystem::path& model_dir, int64_t max_context,
                                            AttentionMode attention, int concurrency, const OpenOptions& engine) {
  // The caches are sized for the context window; without --context-window a local run gets 32K.
  DSA_TRY(llm, LocalLlm::open(model_dir, attention, max_context > 0 ? max_context : 32768, concurrency, engine));
  return std::unique_ptr<Llm>(std::move(llm));
}

AttentionMode attention_mode(const AgentOptions& opts) {
  return opts.attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;
}

Result<std::unique_ptr<Llm>> make_llm(const AgentOptions& opts, int concurrency) {
  if (!opts.model_dir.empty()) {
    DSA_TRY(engine, engine_options(opts.engine));
    return make_local_llm(opts.model_dir, opts.context_window, attention_mode(opts), concurrency, engine);
  }
  RemoteConfig config;
  config.base_url = opts.api_url;
  config.model = opts.api_model;
  config.api_key_env = opts.api_key_env;
  config.context_window = opts.context_window;
  config.idle_timeout_ms = int(opts.api_idle_timeout_s * 1000);
  config.max_retries = opts.api_retries;
  DSA_TRY(remote, RemoteLlm::create(std::move(config)));
  return std::unique_ptr<Llm>(std::move(remote));
}

namespace {

void add_group(ToolRegistry& registry, const std::string& name) {
  auto add = [&](std::unique_ptr<Tool> t) {
    if (!registry.has(t->spec().name)) registry.add(std::move(t));
  };
  if (name == "shell" || name == "coding") add(make_shell_tool());
  if (name == "files" || name == "coding" || name == "read_file") add(make_read_file_tool());
  if (name == "files" || name == "coding" || name == "write_file") add(make_write_file_tool());
  if (name == "files" || name == "coding" || name == "edit_file") add(make_edit_file_tool());
  if (name == "search" || name == "coding" || name == "grep") add(make_grep_tool());
  if (name == "search" || name == "coding" || name == "glob") add(make_glob_tool());
  if (name == "calculator") add(make_calculator_tool());
}

// The browse tools over the offline corpus (--corpus) or the web (--searxng, or "webSearch" in the
// config file); one Browser per registry, so each session has its own pages and cursors.
Result<void> add_browse_group(ToolRegistry& registry, const AgentOptions& opts) {
  if (registry.has("open") || registry.has("get_document")) return {};
  std::shared_ptr<BrowseBackend> backend;
  if (!opts.corpus.empty()) {
    auto corpus = open_corpus(opts.corpus);
    if (!corpus) return make_error("--corpus: " + corpus.error().message);
    backend = make_corpus_backend(std::shared_ptr<const Corpus>(std::move(corpus.value())));
  } else if (!opts.searxng.empty()) {
    DSA_TRY(config, parse_web_search_config(json{{"api", "searxng"}, {"base_url", opts.searxng}}, "--searxng"));
    backend = make_web_backend(std::move(config));
  } else if (!opts.web_search.is_null()) {
    DSA_TRY(config, parse_web_search_config(opts.web_search, "webSearch"));
    backend = make_web_backend(std::move(config));
  } else {
    return make_error("--tools browse: needs --corpus DB, --searxng URL or a \"webSearch\" entry in the config file");
  }
  add_browse_tools(registry, std::make_shared<Browser>(backend),
                   opts.browse_tools == "browsecomp-plus" ? BrowseToolSet::browsecomp_plus : BrowseToolSet::deepseek);
  return {};
}

bool is_group(const std::string& name) {
  for (const char* g : {"shell", "files", "search", "coding", "none", "browse", "read_file", "write_file", "edit_file",
                        "grep", "glob", "calculator"})
    if (name == g) return true;
  return false;
}

}  // namespace

Result<std::vector<std::string>> add_selected_tools(ToolRegistry& registry, const AgentOptions& opts,
                                                    const BrowseAdder& browse) {
  std::stringstream ss(opts.tools);
  for (std::string name; std::getline(ss, name, ',');) {
    if (name.empty()) continue;
    if (!is_group(name))
      return make_error("--tools: unknown tool set '" + name +
                        "' (known: shell, files, search, coding, browse, calculator, none, or a coding tool's name)");
    if (name == "browse") {
      if (browse) {
        browse(registry);
      } else if (auto ok = add_browse_group(registry, opts); !ok) {
        return ok.error();
      }
      continue;
    }
    add_group(registry, name);
  }
  std::vector<std::string> warnings;
  if (!opts.mcp_config.empty()) {
    DSA_TRY(servers, load_mcp_config(opts.mcp_config));
    DSA_TRY(mcp_warnings, add_mcp_tools(registry, servers));
    warnings = std::move(mcp_warnings);
  } else if (!opts.mcp_servers.is_null()) {
    DSA_TRY(servers, parse_mcp_config(json{{"mcpServers", opts.mcp_servers}}, opts.config_file.empty()
                                                                                 ? default_config_path().string()
                                                                                 : opts.config_file));
    DSA_TRY(mcp_warnings, add_mcp_tools(registry, servers));
    warnings = std::move(mcp_warnings);
  }
  std::vector<std::filesystem::path> specs(opts.tool_specs.begin(), opts.tool_specs.end());
  if (auto ok = add_command_tools(registry, specs); !ok) return ok.error();
  return warnings;
}

Result<ToolContext> make_tool_context(const AgentOptions& opts) {
  ToolContext ctx;
  std::error_code ec;
  std::filesystem::path dir = opts.workdir.empty() ? std::filesystem::current_path(ec) : std::filesystem::path(opts.workdir);
  if (!std::filesystem::exists(dir, ec)) return make_error("--workdir " + dir.string() + ": does not exist");
  if (!std::filesystem::is_directory(dir, ec)) return make_error("--workdir " + dir.string() + ": not a directory");
  if (::access(dir.c_str(), R_OK | X_OK) != 0)
    return make_error("--workdir " + dir.string() + ": " + std::strerror(errno));
  ctx.workdir = std::filesystem::absolute(dir, ec);
  ctx.approval = opts.approval == "ask"         ? ApprovalMode::ask
                 : opts.approval == "read-only" ? ApprovalMode::read_only
                                                : ApprovalMode::auto_approve;
  ctx.timeout = std::chrono::seconds(opts.tool_timeout_s);
  ctx.sandbox = opts.sandbox;
  // Asked for, the sandbox is a condition of running commands at all: checked before any step.
  if (ctx.sandbox)
    if (auto ok = sandbox_available(); !ok) return make_error("--sandbox: " + ok.error().message);
  return ctx;
}

GenOptions make_gen_options(const AgentOptions& opts) {
  GenOptions g;
  g.thinking = opts.thinking == "on";
  g.temperature = opts.temperature;
  g.top_p = opts.top_p;
  g.seed = opts.seed;
  g.max_tokens = opts.max_tokens;
  return g;
}

}  // namespace dsa::cli
