// Checks for real-valued flags whose errors state the range in plain numbers. CLI11's
// PositiveNumber and NonNegativeNumber print their bounds as six-decimal doubles, the upper one
// 309 digits long; integer flags use CLI::Range with bounds that keep later sums from overflowing.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include <fmt/format.h>

namespace dsa::cli {

// A real-valued flag from lo to hi: "Value -1 not in range 0 to 100".
inline CLI::Validator real_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& input) -> std::string {
        double v = 0;
        if (CLI::detail::lexical_cast(input, v) && v >= lo && v <= hi) return {};
        return fmt::format("Value {} not in range {:g} to {:g}", input, lo, hi);
      },
      fmt::format("FLOAT in [{:g} - {:g}]", lo, hi));
}

}  // namespace dsa::cli
