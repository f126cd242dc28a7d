// The DeepSeek-V3.2 chat format as data: special tokens, DSML markup and the tools system prompt,
// verbatim from DeepSeek's encoding_dsv32.py (model-spec.md 10.1). Shared by the encoder and the
// DSML parser so both speak exactly the same markup.
#pragma once
#include <string_view>

namespace dsa::dsv32 {

inline constexpr std::string_view bos = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view eos = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view user_start = "<｜User｜>";
inline constexpr std::string_view assistant_start = "<｜Assistant｜>";
inline constexpr std::string_view think_start = "<think>";
inline constexpr std::string_view think_end = "</think>";
inline constexpr std::string_view dsml = "｜DSML｜";

inline constexpr std::string_view function_calls_open = "<｜DSML｜function_calls";   // followed by ">"
inline constexpr std::string_view function_calls_close = "</｜DSML｜function_calls>";
inline constexpr std::string_view invoke_open = "<｜DSML｜invoke";                   // followed by ` name="N">`
inline constexpr std::string_view invoke_close = "</｜DSML｜invoke>";
inline constexpr std::string_view parameter_open = "<｜DSML｜parameter";             // ` name="K" string="true|false">`
inline constexpr std::string_view parameter_close = "</｜DSML｜parameter>";

inline constexpr std::string_view function_results_open = "\n\n<function_results>";
inline constexpr std::string_view function_results_close = "\n</function_results>";
inline constexpr std::string_view result_open = "\n<result>";
inline constexpr std::string_view result_close = "</result>";

inline constexpr std::string_view developer_message_prefix = "\n\n# The user's message is: ";
inline constexpr std::string_view response_format_prefix =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

// TOOLS_SYSTEM_TEMPLATE with its placeholders filled (dsml_token, thinking tokens), up to the
// point where the tool schemas go; the schemas follow one per line, then tools_prompt_tail.
// The blank lines are those of DeepSeek's golden test_output.txt (model-spec.md 10: the vLLM and
// SGLang copies without them deviate from it).
inline constexpr std::string_view tools_prompt_head = R"(## Tools

You have access to a set of tools you can use to answer the user's question.
You can invoke functions by writing a "<｜DSML｜function_calls>" block like the following as part of your reply to the user:
<｜DSML｜function_calls>
<｜DSML｜invoke name="$FUNCTION_NAME">
<｜DSML｜parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name="$FUNCTION_NAME2">
...
</｜DSML｜invoke>
</｜DSML｜function_calls>

String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).

If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:

<｜DSML｜function_calls>
...
</｜DSML｜function_calls>

<function_results>
...
</function_results>

<think>...thinking about results</think>

Here are the functions available in JSONSchema format:
<functions>
)";
inline constexpr std::string_view tools_prompt_tail = "\n</functions>\n";

}  // namespace dsa::dsv32
