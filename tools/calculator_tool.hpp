// The calculator tool: exact integer arithmetic (falling back to doubles on overflow) over a
// one-line expression, so a small model can hand off the multiplications it would get wrong.
// It touches no files and runs no processes, so it needs no approval.
#pragma once
#include <memory>
#include <string_view>

#include "tools/tool.hpp"

namespace dsa {

// `calculator` {"expression": "4817 * 23"} -> "110791".
std::unique_ptr<Tool> make_calculator_tool();

// The evaluation behind the tool: the printed value, or an is_error observation whose text is one
// line ("division by zero", "unexpected 'x' at position 3", ...). Positions count from 1.
Observation evaluate_expression(std::string_view expression);

}  // namespace dsa
