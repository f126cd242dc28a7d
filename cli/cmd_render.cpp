// `dsagent render` (cli.md): prints the DeepSeek-V3.2 prompt a conversation encodes to, exactly as
// the local engine would tokenise it (engine/chat/encoder.hpp).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "engine/api/result.hpp"
#include "engine/api/types.hpp"
#include "engine/chat/encoder.hpp"
#include "engine/loader/json_text.hpp"

namespace dsa::cli {

namespace {

struct RenderArgs {
  std::string messages_file;
  std::string tools_file;
  std::string thinking = "on";
};

Result<json> read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(path + ": cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    return make_error(path + ": not valid JSON (" + printable(e.what(), 300) + ")");
  }
}

Result<std::vector<ToolSpec>> parse_tools(const json& j, const std::string& where) {
  if (!j.is_array()) return make_error(where + ": tools must be a JSON array");
  std::vector<ToolSpec> tools;
  for (size_t i = 0; i < j.size(); ++i) {
    std::string err;
    auto tool = tool_spec_from_json(j[i], &err);
    if (!tool) return make_error(where + "[" + std::to_string(i) + "]: " + err);
    tools.push_back(std::move(*tool));
  }
  return tools;
}

Result<std::string> render(const RenderArgs& args) {
  DSA_TRY(doc, read_json(args.messages_file));
  // {"messages": [...], "tools": [...]} as in DeepSeek's golden test, or a bare array of messages.
  const json* messages_json = &doc;
  std::vector<ToolSpec> tools;
  if (doc.is_object()) {
    if (!doc.contains("messages")) return make_error(args.messages_file + ": no \"messages\" array");
    messages_json = &doc["messages"];
    if (doc.contains("tools")) {
      DSA_TRY(top_tools, parse_tools(doc["tools"], args.messages_file + ": tools"));
      tools = std::move(top_tools);
    }
  }
  if (!messages_json->is_array()) return make_error(args.messages_file + ": \"messages\" must be a JSON array");
  if (!args.tools_file.empty()) {
    if (!tools.empty()) return make_error("give the tools either in --tools or in " + args.messages_file + ", not both");
    DSA_TRY(tools_doc, read_json(args.tools_file));
    const json& list = tools_doc.is_object() && tools_doc.contains("tools") ? tools_doc["tools"] : tools_doc;
    DSA_TRY(file_tools, parse_tools(list, args.tools_file));
    tools = std::move(file_tools);
  }

  std::vector<Message> messages;
  for (size_t i = 0; i < messages_json->size(); ++i) {
    std::string err;
    auto m = message_from_json((*messages_json)[i], &err);
    if (!m) return make_error(args.messages_file + ": messages[" + std::to_string(i) + "]: " + err);
    messages.push_back(std::move(*m));
  }
  if (auto ok = check_conversation(messages); !ok) return make_error(args.messages_file + ": " + ok.error().message);

  const EncodeOptions opt{.thinking = args.thinking == "on"};
  return join_text(encode_messages(messages, tools, opt));
}

}  // namespace

void add_render_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RenderArgs>();
  auto* cmd = app.add_subcommand("render", "Print the DeepSeek-V3.2 prompt a conversation encodes to");
  cmd->footer(
      "Examples:\n"
      "  dsagent render --messages conversation.json\n"
      "  dsagent render --messages messages.json --tools tools.json --thinking off\n"
      "The messages file holds {\"messages\": [...], \"tools\": [...]} (OpenAI chat shapes) or a bare\n"
      "array of messages. Tools go to the first system message (one is created when there is none).\n"
      "The prompt is printed exactly, with no newline added.");
  cmd->add_option("--messages", args->messages_file, "JSON file with the conversation")->required();
  cmd->add_option("--tools", args->tools_file, "JSON file with an array of tools (OpenAI function format)");
  cmd->add_option("--thinking", args->thinking, "thinking mode (the prompt opens <think>) or chat mode")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->callback([args, &exit_code] {
    const auto text = render(*args);
    if (!text.ok()) {
      std::fprintf(stderr, "dsagent render: %s\n", text.error().message.c_str());
      exit_code = 1;
      return;
    }
    std::fwrite(text->data(), 1, text->size(), stdout);
    exit_code = 0;
  });
}

}  // namespace dsa::cli
