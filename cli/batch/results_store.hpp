// results.jsonl of a batch run: one JSON object per finished task, appended and flushed to disk
// before the task counts as done, so a killed run loses no finished task; reopening skips the ids
// already there (a torn last line from a kill is ignored and rewritten), so a rerun resumes.
#pragma once
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/api/result.hpp"

namespace dsa {

class ResultsStore {
 public:
  // Reads the finished records of `file` (if it exists) and opens it for appending.
  static Result<std::unique_ptr<ResultsStore>> open(const std::filesystem::path& file);
  ~ResultsStore();

  bool finished(const std::string& id) const;
  // Appends one record (it must have a string "id"), then flushes and fsyncs. Thread-safe.
  Result<void> append(const nlohmann::json& record);
  // Every record, earlier runs' first, in file order.
  std::vector<nlohmann::json> records() const;
  size_t torn_lines_dropped() const { return torn_; }

 private:
  ResultsStore() = default;
  mutable std::mutex mu_;
  std::filesystem::path path_;
  std::FILE* out_ = nullptr;
  std::set<std::string> ids_;
  std::vector<nlohmann::json> records_;
  size_t torn_ = 0;
};

}  // namespace dsa
