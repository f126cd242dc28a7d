// Batch inputs (agent-spec section 6): BrowseComp's encrypted CSV (`problem`, `answer`, `canary`;
// problem and answer are base64 of the text XOR-ed with SHA-256(canary) repeated to length),
// BrowseComp-Plus query files and plain JSONL `{id, question, answer?}`.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

struct BatchTask {
  std::string id;
  std::string question;
  std::optional<std::string> answer;  // absent: the run is not graded
  std::string topic;                  // problem_topic when the CSV has it
};

// Standard base64 (padding optional, whitespace ignored); an error on any other character.
Result<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

// BrowseComp's scheme: base64 -> XOR with SHA-256(password) repeated -> text.
Result<std::string> browsecomp_decrypt(std::string_view ciphertext_b64, std::string_view password);
std::string browsecomp_encrypt(std::string_view plaintext, std::string_view password);

// RFC 4180 CSV: quoted fields with "" escapes and embedded newlines. The first row is the header.
Result<std::vector<std::vector<std::string>>> parse_csv(std::string_view text, const std::string& source);

// Loads tasks by extension: .csv (BrowseComp; ids are the row numbers "0", "1", ...) or .jsonl
// (each line {id, question, answer?}; BrowseComp-Plus's {query_id, query, answer}; a `canary` field
// means question and answer are encrypted with it). Errors name the file and line.
Result<std::vector<BatchTask>> load_batch_tasks(const std::filesystem::path& file);

}  // namespace dsa
