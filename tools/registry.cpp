// ToolRegistry: argument parsing and checking, timing and truncation around every tool call.
#include "tools/tool.hpp"

#include <exception>

#include "tools/arguments.hpp"
#include "tools/truncate.hpp"

namespace dsa {

namespace {

class FunctionTool final : public Tool {
 public:
  FunctionTool(ToolSpec spec, std::function<Observation(const json&, ToolContext&)> fn)
      : spec_(std::move(spec)), fn_(std::move(fn)) {}
  const ToolSpec& spec() const override { return spec_; }
  Observation call(const json& args, ToolContext& ctx) override { return fn_(args, ctx); }

 private:
  ToolSpec spec_;
  std::function<Observation(const json&, ToolContext&)> fn_;
};

}  // namespace

std::unique_ptr<Tool> make_tool(ToolSpec spec, std::function<Observation(const json& args, ToolContext& ctx)> fn) {
  return std::make_unique<FunctionTool>(std::move(spec), std::move(fn));
}

void ToolRegistry::add(std::unique_ptr<Tool> tool) {
  DSA_CHECK(tool != nullptr);
  DSA_CHECK(!has(tool->spec().name), "tool names must be unique");
  tools_.push_back(std::move(tool));
}

std::vector<ToolSpec> ToolRegistry::specs() const {
  std::vector<ToolSpec> out;
  out.reserve(tools_.size());
  for (const auto& t : tools_) out.push_back(t->spec());
  return out;
}

bool ToolRegistry::has(std::string_view name) const {
  for (const auto& t : tools_)
    if (t->spec().name == name) return true;
  return false;
}

namespace {

Observation run_checked(Tool& tool, const ToolCall& call, ToolContext& ctx) {
  const std::string& name = call.name;
  json args;
  if (call.arguments.find_first_not_of(" \t\r\n") == std::string::npos) {
    args = json::object();
  } else {
    args = json::parse(call.arguments, nullptr, false);
    if (args.is_discarded()) return {name + ": the arguments are not valid JSON: " + call.arguments, true};
  }
  if (auto ok = check_arguments(tool.spec().parameters, args); !ok) return {name + ": " + ok.error().message, true};
  try {
    return tool.call(args, ctx);
  } catch (const std::exception& e) {
    return {name + " failed: " + e.what(), true};
  }
}

}  // namespace

Observation ToolRegistry::call(const ToolCall& call, ToolContext& ctx) {
  auto start = std::chrono::steady_clock::now();
  Observation obs;
  Tool* tool = nullptr;
  for (const auto& t : tools_)
    if (t->spec().name == call.name) tool = t.get();
  if (!tool) {
    std::string names;
    for (const auto& t : tools_) names += (names.empty() ? "" : ", ") + t->spec().name;
    obs = {"unknown tool '" + call.name + "'; available tools: " + names, true};
  } else {
    obs = run_checked(*tool, call, ctx);
  }
  if (!obs.truncated && obs.text.size() > ctx.max_output_bytes) {
    auto cut = truncate_head_tail(obs.text, ctx.max_output_bytes);
    obs.text = std::move(cut.text);
    obs.truncated = true;
  }
  obs.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return obs;
}

}  // namespace dsa
