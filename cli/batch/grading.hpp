// Grading of BrowseComp-style answers (agent-spec section 6): the judge's verdict parsed from its
// output, the answer and confidence a response states, and calibration error as HLE and
// BrowseComp-Plus compute it.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsa {

struct JudgeVerdict {
  bool found = false;         // a `correct: yes|no` line was present
  bool correct = false;       // the captured group is "yes" (simple-evals compares the whole match: a bug)
  double confidence = 100.0;  // `confidence: NN%` of the judge output, clamped to [0, 100]; 100 when absent
  std::string extracted_answer;
};

JudgeVerdict parse_judge_output(std::string_view text);

// "Exact Answer: ..." and "Confidence: NN%" of a response in the BrowseComp answer format
// (markdown bold around the labels is accepted).
std::optional<std::string> extract_exact_answer(std::string_view response);
std::optional<double> extract_confidence(std::string_view response);

// RMS calibration error in percent over bins of `beta` answers sorted by confidence (0..100), as
// HLE / BrowseComp-Plus's calib_err: the last bin (which takes the remainder) is skipped, so fewer
// than 2 * beta answers give 0.
double calibration_error(const std::vector<double>& confidence, const std::vector<bool>& correct, size_t beta = 100);

}  // namespace dsa
