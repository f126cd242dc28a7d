// Judge output parsing and calibration error (see grading.hpp).
#include "cli/batch/grading.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

namespace dsa {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The text after `label:` on the first line that has it, markdown emphasis and spaces trimmed.
// Labels match case-insensitively at the start of a line, after optional '*', '#' or spaces.
std::optional<std::string> labelled_value(std::string_view text, std::string_view label) {
  const std::string low = lower(text), want = lower(label);
  size_t line_start = 0;
  while (line_start <= text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    size_t p = line_start;
    while (p < line_end && (text[p] == '*' || text[p] == '#' || text[p] == ' ' || text[p] == '_')) ++p;
    if (low.compare(p, want.size(), want) == 0) {
      size_t q = p + want.size();
      while (q < line_end && (text[q] == '*' || text[q] == '_')) ++q;
      if (q < line_end && text[q] == ':') {
        ++q;
        std::string v(text.substr(q, line_end - q));
        auto trim = [](char c) { return c == ' ' || c == '*' || c == '_' || c == '\r' || c == '\t'; };
        while (!v.empty() && trim(v.front())) v.erase(v.begin());
        while (!v.empty() && trim(v.back())) v.pop_back();
        return v;
      }
    }
    line_start = line_end + 1;
  }
  return std::nullopt;
}

std::optional<double> leading_percent(std::string_view v) {
  size_t i = 0;
  while (i < v.size() && !std::isdigit(static_cast<unsigned char>(v[i]))) {
    if (v[i] != ' ' && v[i] != '*') return std::nullopt;
    ++i;
  }
  size_t j = i;
  while (j < v.size() && (std::isdigit(static_cast<unsigned char>(v[j])) || v[j] == '.')) ++j;
  if (j == i) return std::nullopt;
  try {
    return std::clamp(std::stod(std::string(v.substr(i, j - i))), 0.0, 100.0);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

JudgeVerdict parse_judge_output(std::string_view text) {
  JudgeVerdict v;
  // `correct: (yes|no)` anywhere, as the reference regex searches; the group decides.
  const std::string low = lower(text);
  for (size_t p = low.find("correct:"); p != std::string::npos; p = low.find("correct:", p + 1)) {
    size_t q = p + 8;
    while (q < low.size() && (low[q] == ' ' || low[q] == '*')) ++q;
    if (low.compare(q, 3, "yes") == 0 || low.compare(q, 2, "no") == 0) {
      v.found = true;
      v.correct = low.compare(q, 3, "yes") == 0;
      break;
    }
  }
  if (auto c = labelled_value(text, "confidence")) {
    if (auto pct = leading_percent(*c)) v.confidence = *pct;
  }
  if (auto a = labelled_value(text, "extracted_final_answer")) v.extracted_answer = *a;
  return v;
}

std::optional<std::string> extract_exact_answer(std::string_view response) {
  return labelled_value(response, "exact answer");
}

std::optional<double> extract_confidence(std::string_view response) {
  auto c = labelled_value(response, "confidence");
  if (!c) return std::nullopt;
  return leading_percent(*c);
}

double calibration_error(const std::vector<double>& confidence, const std::vector<bool>& correct, size_t beta) {
  const size_t n = std::min(confidence.size(), correct.size());
  if (beta == 0 || n / beta < 2) return 0.0;  // one bin: it is the last one and is skipped
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return confidence[a] < confidence[b]; });
  const size_t n_bins = n / beta;
  double cerr = 0;
  for (size_t b = 0; b + 1 < n_bins; ++b) {  // the last bin is skipped, as in the reference
    double conf = 0, acc = 0;
    for (size_t i = b * beta; i < (b + 1) * beta; ++i) {
      conf += confidence[order[i]] / 100.0;
      acc += correct[order[i]] ? 1.0 : 0.0;
    }
    const double diff = std::abs(conf / static_cast<double>(beta) - acc / static_cast<double>(beta));
    cerr += static_cast<double>(beta) / static_cast<double>(n) * diff * diff;
  }
  return std::sqrt(cerr) * 100.0;
}

}  // namespace dsa
