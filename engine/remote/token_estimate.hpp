// Prompt-size estimate for a server whose tokenizer is not available here. RemoteLlm scales it by
// the ratio it observes between the server's prompt_tokens and this estimate.
#pragma once
#include <span>
#include <vector>

#include "engine/api/types.hpp"

namespace dsa {

// Tokens of the text the model sees, at 3.5 bytes per token plus a few tokens of framing per
// message and tool. Follows thinking retention: reasoning counts only on assistant messages after
// the last user/developer message, and not at all when thinking is off.
double estimate_prompt_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking);

}  // namespace dsa
