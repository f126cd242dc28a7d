// Checks a tool call's arguments against the tool's JSON Schema before the tool runs: the
// "required" keys and the basic "type" keywords (string, integer, number, boolean, array, object,
// null, or a list of them), recursing into "properties" and "items". Other keywords (enum, ranges,
// patterns) are left to the tool, which reports them in its own words.
#pragma once
#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa {

// error: one line naming the argument, e.g. "argument 'path': expected string, got number".
Result<void> check_arguments(const json& schema, const json& args);

}  // namespace dsa
