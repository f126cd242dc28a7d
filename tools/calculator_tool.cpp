// The calculator tool (see calculator_tool.hpp). Grammar, loosest binding first:
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/' | '%') unary)*
//   unary   := ('+' | '-') unary | power
//   power   := primary (('**' | '^') unary)?       right-associative, binds tighter than unary minus
//   primary := number | '(' expr ')'                number: 12, 3.25, .5
// so -2**2 is -4 and 2**3**2 is 512, as in Python. Integers stay exact in int64; an operation that
// overflows, a non-exact division or a decimal operand moves to double. `%` and integer division
// follow Python (the remainder takes the divisor's sign), which is what a model trained on
// Python-checked arithmetic expects.
#include "tools/calculator_tool.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace dsa {

namespace {

constexpr size_t kMaxExpressionChars = 1000;

struct Number {
  bool is_int = true;
  int64_t i = 0;
  double d = 0;
  double real() const { return is_int ? static_cast<double>(i) : d; }
};

Number from_int(int64_t v) { return {true, v, 0}; }
Number from_double(double v) { return {false, 0, v}; }

// A user-caused failure: the message becomes the observation.
struct EvalError {
  std::string message;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Number parse() {
    Number v = expr();
    skip_spaces();
    if (pos_ < s_.size()) {
      if (s_[pos_] == ')') throw EvalError{"unbalanced parenthesis"};
      unexpected();
    }
    return v;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;

  void skip_spaces() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  // Consumes `op` when it comes next (after spaces); "*" does not match the start of "**".
  bool take(std::string_view op) {
    skip_spaces();
    if (s_.substr(pos_, op.size()) != op) return false;
    if (op == "*" && s_.substr(pos_, 2) == "**") return false;
    pos_ += op.size();
    return true;
  }
  [[noreturn]] void unexpected() const {
    if (pos_ >= s_.size()) throw EvalError{"unexpected end of expression"};
    throw EvalError{"unexpected '" + std::string(1, s_[pos_]) + "' at position " + std::to_string(pos_ + 1)};
  }

  Number expr() {
    Number v = term();
    for (;;) {
      if (take("+")) v = add(v, term(), false);
      else if (take("-")) v = add(v, term(), true);
      else return v;
    }
  }
  Number term() {
    Number v = unary();
    for (;;) {
      if (take("*")) v = mul(v, unary());
      else if (take("/")) v = div(v, unary());
      else if (take("%")) v = mod(v, unary());
      else return v;
    }
  }
  Number unary() {
    if (take("-")) return negate(unary());
    if (take("+")) return unary();
    return power();
  }
  Number power() {
    Number base = primary();
    if (take("**") || take("^")) return pow(base, unary());
    return base;
  }
  Number primary() {
    skip_spaces();
    if (take("(")) {
      Number v = expr();
      skip_spaces();
      if (pos_ >= s_.size()) throw EvalError{"unbalanced parenthesis"};
      if (!take(")")) unexpected();
      return v;
    }
    return number();
  }
  Number number() {
    const size_t start = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    bool decimal = false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      decimal = true;
      ++pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    const std::string text(s_.substr(start, pos_ - start));
    if (text.empty() || text == ".") {
      pos_ = start;
      unexpected();
    }
    if (!decimal) {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno != ERANGE) return from_int(v);
    }
    return from_double(std::strtod(text.c_str(), nullptr));  // an integer past int64 is kept approximately
  }

  static Number add(Number a, Number b, bool subtract) {
    int64_t r;
    if (a.is_int && b.is_int && !(subtract ? __builtin_sub_overflow(a.i, b.i, &r) : __builtin_add_overflow(a.i, b.i, &r)))
      return from_int(r);
    return from_double(subtract ? a.real() - b.real() : a.real() + b.real());
  }
  static Number mul(Number a, Number b) {
    int64_t r;
    if (a.is_int && b.is_int && !__builtin_mul_overflow(a.i, b.i, &r)) return from_int(r);
    return from_double(a.real() * b.real());
  }
  static Number negate(Number a) {
    if (a.is_int && a.i != std::numeric_limits<int64_t>::min()) return from_int(-a.i);
    return from_double(-a.real());
  }
  static Number div(Number a, Number b) {
    if (b.real() == 0) throw EvalError{"division by zero"};
    if (a.is_int && b.is_int && !(b.i == -1 && a.i == std::numeric_limits<int64_t>::min()) && a.i % b.i == 0)
      return from_int(a.i / b.i);
    return from_double(a.real() / b.real());
  }
  static Number mod(Number a, Number b) {
    if (b.real() == 0) throw EvalError{"division by zero"};
    if (a.is_int && b.is_int) {
      if (b.i == -1) return from_int(0);  // also avoids INT64_MIN % -1
      int64_t r = a.i % b.i;
      if (r != 0 && ((r < 0) != (b.i < 0))) r += b.i;
      return from_int(r);
    }
    double r = std::fmod(a.real(), b.real());
    if (r != 0 && ((r < 0) != (b.real() < 0))) r += b.real();
    return from_double(r);
  }
  static Number pow(Number a, Number b) {
    if (a.is_int && b.is_int && b.i >= 0) {  // square-and-multiply, exact until it overflows
      int64_t result = 1, base = a.i, e = b.i;
      bool overflow = false;
      while (e > 0 && !overflow) {
        if (e & 1) overflow = __builtin_mul_overflow(result, base, &result);
        e >>= 1;
        if (e > 0 && !overflow) overflow = __builtin_mul_overflow(base, base, &base);
      }
      if (!overflow) return from_int(result);
    }
    if (a.real() == 0 && b.real() < 0) throw EvalError{"division by zero"};
    return from_double(std::pow(a.real(), b.real()));
  }
};

std::string format_number(const Number& v) {
  if (v.is_int) return std::to_string(v.i);
  double d = v.d == 0 ? 0.0 : v.d;  // no "-0"
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", d);
  return buf;
}

}  // namespace

Observation evaluate_expression(std::string_view expression) {
  if (expression.size() > kMaxExpressionChars)
    return {"expression too long (" + std::to_string(expression.size()) + " characters, at most " +
                std::to_string(kMaxExpressionChars) + ")",
            true};
  if (expression.find_first_not_of(" \t\r\n") == std::string_view::npos) return {"empty expression", true};
  try {
    Number v = Parser(expression).parse();
    if (!v.is_int && std::isnan(v.d)) return {"the result is not a real number", true};
    if (!v.is_int && std::isinf(v.d)) return {"the result is too large", true};
    return {format_number(v)};
  } catch (const EvalError& e) {
    return {e.message, true};
  }
}

std::unique_ptr<Tool> make_calculator_tool() {
  // The spec is kept this short on purpose: it goes into a tiny model's prompt.
  return make_tool({"calculator", "Evaluates an arithmetic expression and returns its value.",
                    json::parse(R"({"type": "object", "properties": {"expression": {"type": "string"}},
                                    "required": ["expression"]})")},
                   [](const json& args, ToolContext&) {
                     return evaluate_expression(args.at("expression").get<std::string>());
                   });
}

}  // namespace dsa
