// The calculator tool: operators, precedence, exact integers, decimals and every error message.
#include <doctest/doctest.h>

#include "tools/calculator_tool.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

std::string calc(const std::string& expression) {
  Observation o = evaluate_expression(expression);
  REQUIRE_MESSAGE(!o.is_error, expression << " -> " << o.text);
  return o.text;
}

std::string calc_error(const std::string& expression) {
  Observation o = evaluate_expression(expression);
  REQUIRE_MESSAGE(o.is_error, expression << " -> " << o.text);
  return o.text;
}

}  // namespace

TEST_CASE("calculator: each operator on integers") {
  CHECK(calc("2 + 3") == "5");
  CHECK(calc("2 - 7") == "-5");
  CHECK(calc("6 * 7") == "42");
  CHECK(calc("84 / 2") == "42");
  CHECK(calc("17 % 5") == "2");
  CHECK(calc("2 ** 10") == "1024");
  CHECK(calc("2 ^ 10") == "1024");
  CHECK(calc("-4") == "-4");
  CHECK(calc("+4") == "4");
  CHECK(calc("- -4") == "4");
}

TEST_CASE("calculator: precedence, parentheses and spaces") {
  CHECK(calc("2 + 3 * 4") == "14");
  CHECK(calc("(2 + 3) * 4") == "20");
  CHECK(calc("10 - 4 - 3") == "3");  // left-associative
  CHECK(calc("100 / 10 / 5") == "2");
  CHECK(calc("2 * 3 ** 2") == "18");
  CHECK(calc("-2 ** 2") == "-4");  // power binds tighter than unary minus, as in Python
  CHECK(calc("(-2) ** 2") == "4");
  CHECK(calc("  ( ( 1+2 ) *(3 +4))  ") == "21");
  CHECK(calc("7+8%3") == "9");
}

TEST_CASE("calculator: power is right-associative and takes a signed exponent") {
  CHECK(calc("2 ** 3 ** 2") == "512");
  CHECK(calc("2 ^ 3 ^ 2") == "512");
  CHECK(calc("(2 ** 3) ** 2") == "64");
  CHECK(calc("2 ** -1") == "0.5");
  CHECK(calc("4 ** 0.5") == "2");
  CHECK(calc("0 ** 0") == "1");
}

TEST_CASE("calculator: integer products are exact, overflow moves to doubles") {
  CHECK(calc("4817 * 23") == "110791");
  CHECK(calc("99999 * 99999") == "9999800001");
  CHECK(calc("123456789 * 987654321") == "121932631112635269");
  CHECK(calc("9223372036854775807") == "9223372036854775807");
  CHECK(calc("-9223372036854775807 - 1") == "-9223372036854775808");
  CHECK(calc("3 ** 39") == "4052555153018976267");
  CHECK(calc("9223372036854775807 + 1") == "9.22337203685e+18");
  CHECK(calc("2 ** 64") == "1.84467440737e+19");
  CHECK(calc("99999999999999999999") == "1e+20");
}

TEST_CASE("calculator: division and remainder") {
  CHECK(calc("7 / 2") == "3.5");
  CHECK(calc("1 / 3") == "0.333333333333");
  CHECK(calc("-12 / 4") == "-3");
  CHECK(calc("2 / 3 * 3") == "2");
  CHECK(calc("-7 % 3") == "2");  // the remainder takes the divisor's sign, as in Python
  CHECK(calc("7 % -3") == "-2");
  CHECK(calc("7.5 % 2") == "1.5");
}

TEST_CASE("calculator: decimals print with up to 12 significant digits, no trailing zeros") {
  CHECK(calc("3.25") == "3.25");
  CHECK(calc("3.25 * 4") == "13");
  CHECK(calc("1.5 + 1") == "2.5");
  CHECK(calc(".5 + .25") == "0.75");
  CHECK(calc("0.1 + 0.2") == "0.3");
  CHECK(calc("2.50") == "2.5");
  CHECK(calc("-0.0") == "0");
  CHECK(calc("10 / 4") == "2.5");
}

TEST_CASE("calculator: errors are one line") {
  CHECK(calc_error("1 / 0") == "division by zero");
  CHECK(calc_error("1 / (2 - 2)") == "division by zero");
  CHECK(calc_error("5 % 0") == "division by zero");
  CHECK(calc_error("1.5 / 0.0") == "division by zero");
  CHECK(calc_error("0 ** -1") == "division by zero");
  CHECK(calc_error("12x4") == "unexpected 'x' at position 3");
  CHECK(calc_error("2 + abc") == "unexpected 'a' at position 5");
  CHECK(calc_error("()") == "unexpected ')' at position 2");
  CHECK(calc_error("1 +") == "unexpected end of expression");
  CHECK(calc_error("(1 + 2") == "unbalanced parenthesis");
  CHECK(calc_error("((1)") == "unbalanced parenthesis");
  CHECK(calc_error("1 + 2)") == "unbalanced parenthesis");
  CHECK(calc_error("") == "empty expression");
  CHECK(calc_error("   ") == "empty expression");
  CHECK(calc_error("(-8) ** 0.5") == "the result is not a real number");
  CHECK(calc_error("10.0 ** 400") == "the result is too large");
  CHECK(calc_error(std::string(1001, '1')) == "expression too long (1001 characters, at most 1000)");
  std::string sum = " 1";
  for (int i = 0; i < 499; ++i) sum += "+1";
  CHECK(sum.size() == 1000);
  CHECK(calc(sum) == "500");  // at the limit: still fine
}

TEST_CASE("calculator tool: spec and calls through the registry") {
  TempDir dir{"dsa-calc"};
  ToolRegistry reg;
  reg.add(make_calculator_tool());
  ToolContext ctx = context_in(dir);
  const ToolSpec spec = reg.specs().at(0);
  CHECK(spec.name == "calculator");
  CHECK(spec.description == "Evaluates an arithmetic expression and returns its value.");
  CHECK(spec.parameters == json::parse(R"({"type": "object", "properties": {"expression": {"type": "string"}},
                                           "required": ["expression"]})"));
  Observation ok = call_tool(reg, ctx, "calculator", {{"expression", "4817 * 23"}});
  CHECK_FALSE(ok.is_error);
  CHECK(ok.text == "110791");
  Observation bad = call_tool(reg, ctx, "calculator", {{"expression", "1/0"}});
  CHECK(bad.is_error);
  CHECK(bad.text == "division by zero");
  CHECK(call_tool(reg, ctx, "calculator", json::object()).is_error);  // the schema's required key
}
