// Batch task loading and BrowseComp's dataset encryption (see dataset.hpp).
#include "cli/batch/dataset.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/batch/sha256.hpp"

namespace dsa {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

std::string xor_with_key(std::string_view data, std::string_view password) {
  const auto key = sha256(password);
  std::string out(data);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(out[i] ^ static_cast<char>(key[i % key.size()]));
  return out;
}

std::string json_text(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    return it->is_string() ? it->get<std::string>() : it->dump();
  }
  return {};
}

bool has_any(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    if (j.contains(k) && !j[k].is_null()) return true;
  }
  return false;
}

Result<std::vector<BatchTask>> load_csv(const std::filesystem::path& file, const std::string& text) {
  DSA_TRY(rows, parse_csv(text, file.string()));
  if (rows.empty()) return make_error(file.string() + ": empty CSV");
  const auto& header = rows[0];
  auto column = [&](std::string_view name) -> int {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return static_cast<int>(i);
    }
    return -1;
  };
  const int problem = column("problem"), answer = column("answer"), canary = column("canary"), topic = column("problem_topic");
  if (problem < 0) return make_error(file.string() + ": no 'problem' column");
  std::vector<BatchTask> tasks;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::string where = file.string() + ": row " + std::to_string(r);
    if (row.size() != header.size()) {
      return make_error(where + ": " + std::to_string(row.size()) + " fields, the header has " +
                        std::to_string(header.size()));
    }
    BatchTask t;
    t.id = std::to_string(r - 1);
    if (topic >= 0) t.topic = row[static_cast<size_t>(topic)];
    if (canary >= 0) {
      const std::string& pw = row[static_cast<size_t>(canary)];
      auto q = browsecomp_decrypt(row[static_cast<size_t>(problem)], pw);
      if (!q) return make_error(where + ": problem: " + q.error().message);
      t.question = *q;
      if (answer >= 0) {
        auto a = browsecomp_decrypt(row[static_cast<size_t>(answer)], pw);
        if (!a) return make_error(where + ": answer: " + a.error().message);
        t.answer = *a;
      }
    } else {
      t.question = row[static_cast<size_t>(problem)];
      if (answer >= 0) t.answer = row[static_cast<size_t>(answer)];
    }
    tasks.push_back(std::move(t));
  }
  return tasks;
}

Result<std::vector<BatchTask>> load_jsonl(const std::filesystem::path& file, const std::string& text) {
  std::vector<BatchTask> tasks;
  std::istringstream in(text);
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(line_no);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return make_error(where + ": not a JSON object");
    BatchTask t;
    t.id = json_text(j, {"id", "query_id", "qid"});
    t.question = json_text(j, {"question", "query", "problem"});
    if (t.id.empty()) return make_error(where + ": missing \"id\"");
    if (!has_any(j, {"question", "query", "problem"})) return make_error(where + ": missing \"question\"");
    if (has_any(j, {"answer"})) t.answer = json_text(j, {"answer"});
    t.topic = json_text(j, {"topic", "problem_topic"});
    if (const std::string pw = json_text(j, {"canary"}); !pw.empty()) {
      auto q = browsecomp_decrypt(t.question, pw);
      if (!q) return make_error(where + ": question: " + q.error().message);
      t.question = *q;
      if (t.answer) {
        auto a = browsecomp_decrypt(*t.answer, pw);
        if (!a) return make_error(where + ": answer: " + a.error().message);
        t.answer = *a;
      }
    }
    tasks.push_back(std::move(t));
  }
  return tasks;
}

}  // namespace

Result<std::string> base64_decode(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int nbits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '=' ) break;
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    const int v = b64_value(c);
    if (v < 0) return make_error("invalid base64 character at offset " + std::to_string(i));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((acc >> nbits) & 0xFF));
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (const size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> browsecomp_decrypt(std::string_view ciphertext_b64, std::string_view password) {
  DSA_TRY(bytes, base64_decode(ciphertext_b64));
  return xor_with_key(bytes, password);
}

std::string browsecomp_encrypt(std::string_view plaintext, std::string_view password) {
  return base64_encode(xor_with_key(plaintext, password));
}

Result<std::vector<std::vector<std::string>>> parse_csv(std::string_view text, const std::string& source) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int line = 1;
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n') {
      end_row();
      ++line;
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      continue;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) return make_error(source + ": line " + std::to_string(line) + ": unterminated quoted field");
  if (field_started || !row.empty()) end_row();
  return rows;
}

Result<std::vector<BatchTask>> load_batch_tasks(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(file.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);  // a byte-order mark (spreadsheet exports)
  const std::string ext = file.extension().string();
  Result<std::vector<BatchTask>> tasks = ext == ".csv" ? load_csv(file, text) : load_jsonl(file, text);
  if (!tasks) return tasks;
  if (tasks->empty()) return make_error(file.string() + ": no tasks");
  std::set<std::string> seen;
  for (const auto& t : *tasks) {
    if (!seen.insert(t.id).second) return make_error(file.string() + ": duplicate task id '" + t.id + "'");
  }
  return tasks;
}

}  // namespace dsa
