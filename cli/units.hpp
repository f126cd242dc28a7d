// Byte counts for people: "8.50 MiB", "627.74 GiB" (binary units, two decimals; bytes as an integer).
#pragma once
#include <string>

namespace dsa::cli {

std::string with_units(double bytes);

}  // namespace dsa::cli
