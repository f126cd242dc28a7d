// The prompt templates compiled into the binary (from prompts/templates/*.txt).
#pragma once
#include <span>
#include <string_view>

namespace dsa::prompts {

struct EmbeddedPrompt {
  std::string_view name;  // file name without extension
  std::string_view text;
};

std::span<const EmbeddedPrompt> embedded_prompts();

}  // namespace dsa::prompts
