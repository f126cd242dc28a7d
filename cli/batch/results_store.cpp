// The append-only, resumable results file of a batch run (see results_store.hpp).
#include "cli/batch/results_store.hpp"

#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace dsa {

Result<std::unique_ptr<ResultsStore>> ResultsStore::open(const std::filesystem::path& file) {
  std::unique_ptr<ResultsStore> s(new ResultsStore());
  s->path_ = file;
  std::error_code ec;
  if (!file.parent_path().empty()) std::filesystem::create_directories(file.parent_path(), ec);
  s->out_ = std::fopen(file.c_str(), "ab");
  if (!s->out_) return make_error(file.string() + ": cannot open for appending");
  // One writer at a time: two runs on one directory would each run every task. The lock goes with
  // the file's closing (or the process's end).
  if (::flock(::fileno(s->out_), LOCK_EX | LOCK_NB) != 0)
    return make_error(file.string() + ": another batch run is writing it (wait for it to end, or use another --out)");
  std::string text;
  {
    std::ifstream in(file, std::ios::binary);
    if (!in) return make_error(file.string() + ": cannot read");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  // Keep whole lines that parse; a torn tail (no newline, or not JSON) is cut off the file.
  size_t good_end = 0, pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    ++line_no;
    if (nl == std::string::npos) {  // no newline: the write was cut
      ++s->torn_;
      break;
    }
    const std::string line = text.substr(pos, nl - pos);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string()) {
      if (nl + 1 < text.size()) {
        return make_error(file.string() + ":" + std::to_string(line_no) + ": not a result record");
      }
      ++s->torn_;
      break;
    }
    s->keep(std::move(j));
    good_end = nl + 1;
    pos = nl + 1;
  }
  if (good_end < text.size()) std::filesystem::resize_file(file, good_end);  // appends go to the new end
  return s;
}

ResultsStore::~ResultsStore() {
  if (out_) std::fclose(out_);
}

void ResultsStore::keep(nlohmann::json record) {
  const std::string id = record["id"].get<std::string>();
  if (const auto it = index_.find(id); it != index_.end()) {
    records_[it->second] = std::move(record);
  } else {
    index_.emplace(id, records_.size());
    records_.push_back(std::move(record));
  }
}

bool ResultsStore::finished(const std::string& id) const {
  std::lock_guard lock(mu_);
  const auto it = index_.find(id);
  return it != index_.end() && records_[it->second].value("status", "") != "error";
}

std::optional<nlohmann::json> ResultsStore::record(const std::string& id) const {
  std::lock_guard lock(mu_);
  const auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return records_[it->second];
}

Result<void> ResultsStore::append(const nlohmann::json& record) {
  std::lock_guard lock(mu_);
  DSA_CHECK(record.contains("id") && record["id"].is_string(), "a result record needs a string id");
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size() || std::fflush(out_) != 0 ||
      ::fsync(::fileno(out_)) != 0) {
    return make_error(path_.string() + ": write failed");
  }
  keep(record);
  return {};
}

std::vector<nlohmann::json> ResultsStore::records() const {
  std::lock_guard lock(mu_);
  return records_;
}

}  // namespace dsa
