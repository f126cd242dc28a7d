// The request side of the OpenAI chat-completions protocol: endpoint URL and request body.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/api/types.hpp"
#include "engine/remote/remote_config.hpp"

namespace dsa {

// "http://h:p" -> "http://h:p/v1/chat/completions"; ".../v1" -> ".../v1/chat/completions"; a URL
// already ending in "/chat/completions" is kept. Errors name the URL when it is not http(s).
Result<std::string> chat_completions_url(const std::string& base_url);

// The streaming request body. Assistant messages with tool calls always carry `reasoning_content`
// (empty when none: the DeepSeek API answers 400 without it); other assistant messages omit it.
// A system/developer message's response_format becomes the request's json_schema response_format.
json build_chat_request(const RemoteConfig& config, const std::vector<Message>& messages,
                        std::span<const ToolSpec> tools, const GenOptions& options);

}  // namespace dsa
