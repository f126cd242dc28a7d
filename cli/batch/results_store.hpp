// results.jsonl of a batch run: one JSON object per task run, appended and flushed to disk before
// the task counts as done, so a killed run loses no finished task; reopening skips the ids already
// finished (a torn last line from a kill is ignored and rewritten), so a rerun resumes. A record
// whose status is "error" (the model or the agent failed: an HTTP error, a server gone) does not
// finish its task: a rerun runs it again. An id's last record in the file is the one that counts
// (a rerun's, or a record graded again), so the file keeps every attempt.
#pragma once
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

class ResultsStore {
 public:
  // Reads the finished records of `file` (if it exists) and opens it for appending; an error while
  // another store, in any process, holds it open.
  static Result<std::unique_ptr<ResultsStore>> open(const std::filesystem::path& file);
  ~ResultsStore();

  // Whether id has a record whose status is not "error".
  bool finished(const std::string& id) const;
  // id's record, if there is one.
  std::optional<nlohmann::json> record(const std::string& id) const;
  // Appends one record (it must have a string "id"), then flushes and fsyncs; it replaces the id's
  // earlier record. Thread-safe.
  Result<void> append(const nlohmann::json& record);
  // Each id's record, in the order the ids first appeared.
  std::vector<nlohmann::json> records() const;
  size_t torn_lines_dropped() const { return torn_; }

 private:
  ResultsStore() = default;
  mutable std::mutex mu_;
  std::filesystem::path path_;
  std::FILE* out_ = nullptr;
  void keep(nlohmann::json record);      // mu_ held
  std::map<std::string, size_t> index_;  // id -> its record in records_
  std::vector<nlohmann::json> records_;
  size_t torn_ = 0;
};

}  // namespace dsa
