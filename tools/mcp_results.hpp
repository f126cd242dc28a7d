// The results of MCP requests as dsagent reads them. Every member used is checked for its JSON type,
// so a server answering with the wrong shape gets one line naming the member ("tools[1].name is a
// number, expected a string") instead of a JSON library exception. Optional members that are
// absent or null take their defaults. Not here: the JSON-RPC framing (mcp_client.cpp).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "tools/mcp.hpp"

namespace dsa {

// initialize: the protocol version the server chose (empty when it names none).
Result<std::string> parse_initialize_result(const json& result);

struct McpToolsPage {
  std::vector<McpToolInfo> tools;
  std::optional<std::string> next_cursor;
};

// One page of tools/list. A tool without inputSchema gets {"type": "object"}.
Result<McpToolsPage> parse_tools_page(const json& result);

// tools/call: the text of the content items (text joined by newlines, other kinds summarised; the
// structuredContent when there is no content) and isError.
Result<Observation> parse_call_result(const json& result);

// A JSON-RPC error object as "MESSAGE (JSON-RPC error CODE)".
std::string describe_rpc_error(const json& error);

}  // namespace dsa
