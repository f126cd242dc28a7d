// The conversation, its rounds and the thinking-retention rule (see conversation.hpp).
#include "context/conversation.hpp"

#include <algorithm>
#include <fstream>
#include <set>

#include "context/atomic_file.hpp"

namespace dsa {

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::conversation:
      return "conversation";
    case Origin::summary:
      return "summary";
    case Origin::note:
      return "note";
  }
  return "?";
}

namespace {

std::optional<Origin> parse_origin(std::string_view s) {
  if (s == "conversation") return Origin::conversation;
  if (s == "summary") return Origin::summary;
  if (s == "note") return Origin::note;
  return std::nullopt;
}

bool is_user_like(Role r) { return r == Role::user || r == Role::developer; }

}  // namespace

void Conversation::append(Message m) { append(std::move(m), Origin::conversation); }

void Conversation::append(Message m, Origin origin) {
  messages_.push_back(std::move(m));
  origins_.push_back(origin);
}

void Conversation::append_system(std::string content) {
  append(Message{.role = Role::system, .content = std::move(content)});
}

void Conversation::append_user(std::string content) {
  append(Message{.role = Role::user, .content = std::move(content)});
}

void Conversation::append_assistant(const AssistantTurn& turn) {
  Message m{.role = Role::assistant, .content = turn.content};
  if (!turn.reasoning.empty()) m.reasoning_content = turn.reasoning;
  m.tool_calls = turn.tool_calls;
  append(std::move(m));
}

void Conversation::append_tool_result(std::string call_id, std::string content) {
  append(Message{.role = Role::tool, .content = std::move(content), .tool_call_id = std::move(call_id)});
}

std::vector<Round> Conversation::rounds() const {
  std::vector<Round> out;
  for (size_t i = 0; i < messages_.size(); ++i) {
    const Message& m = messages_[i];
    if (m.role != Role::assistant || m.tool_calls.empty()) continue;
    size_t end = i + 1;
    while (end < messages_.size() && messages_[end].role == Role::tool) ++end;
    out.push_back(Round{i, end});
    i = end - 1;
  }
  return out;
}

size_t Conversation::last_user_index() const {
  for (size_t i = messages_.size(); i-- > 0;)
    if (is_user_like(messages_[i].role)) return i;
  return messages_.size();
}

std::vector<Message> Conversation::messages_for_model(bool thinking) const {
  std::vector<Message> out = messages_;
  const size_t last_user = last_user_index();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].role != Role::assistant) continue;
    // With no user message at all every turn is current (as in the encoder).
    const bool current = last_user == out.size() || i > last_user;
    if (!thinking || !current) out[i].reasoning_content.reset();
  }
  return out;
}

void Conversation::remove(std::vector<size_t> indices) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  for (size_t k = indices.size(); k-- > 0;) {
    const size_t i = indices[k];
    DSA_CHECK(i < messages_.size(), "message index out of range");
    DSA_CHECK(
        origins_[i] != Origin::conversation || (messages_[i].role != Role::system && !is_user_like(messages_[i].role)),
        "the system prompt and user messages are never removed");
    messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(i));
    origins_.erase(origins_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void Conversation::insert(size_t index, Message m, Origin origin) {
  DSA_CHECK(index <= messages_.size(), "insert position out of range");
  messages_.insert(messages_.begin() + static_cast<std::ptrdiff_t>(index), std::move(m));
  origins_.insert(origins_.begin() + static_cast<std::ptrdiff_t>(index), origin);
}

json Conversation::to_json() const {
  json arr = json::array();
  for (size_t i = 0; i < messages_.size(); ++i) {
    json j = dsa::to_json(messages_[i]);
    if (origins_[i] != Origin::conversation) j["origin"] = origin_name(origins_[i]);
    arr.push_back(std::move(j));
  }
  return json{{"messages", std::move(arr)}};
}

Result<Conversation> Conversation::from_json(const json& j) {
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
    return make_error("conversation: field 'messages' (an array) is missing");
  Conversation conv;
  size_t index = 0;
  std::set<std::string> calls;  // the ids the last assistant message called
  for (const json& mj : j["messages"]) {
    std::string err;
    auto m = message_from_json(mj, &err);
    if (!m) return make_error("conversation: messages[" + std::to_string(index) + "]: " + err);
    // A tool result answers a call of the assistant message before it: a server refuses any other
    // (and every later request with it).
    if (m->role == Role::assistant) {
      calls.clear();
      for (const ToolCall& c : m->tool_calls) calls.insert(c.id);
    } else if (m->role == Role::tool && !calls.count(m->tool_call_id)) {
      return make_error("conversation: messages[" + std::to_string(index) + "]: a tool result for '" + m->tool_call_id +
                        "', which the assistant message before it did not call");
    } else if (m->role != Role::tool) {
      calls.clear();
    }
    Origin origin = Origin::conversation;
    if (mj.contains("origin")) {
      auto o = mj["origin"].is_string() ? parse_origin(mj["origin"].get<std::string>()) : std::nullopt;
      if (!o) return make_error("conversation: messages[" + std::to_string(index) + "]: unknown 'origin'");
      origin = *o;
    }
    conv.append(std::move(*m), origin);
    ++index;
  }
  return conv;
}

void Conversation::drop_last() {
  DSA_CHECK(!messages_.empty(), "drop_last on an empty conversation");
  messages_.pop_back();
  origins_.pop_back();
}

Result<void> Conversation::save(const std::filesystem::path& path) const {
  return write_file_atomic(path, to_json().dump(1, ' ', false, json::error_handler_t::replace) + "\n");
}

Result<Conversation> Conversation::load(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return make_error("conversation file '" + path.string() + "' is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f.is_open()) return make_error("cannot read conversation file '" + path.string() + "'");
  json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("conversation file '" + path.string() + "' is not valid JSON");
  auto conv = from_json(j);
  if (!conv) return make_error(path.string() + ": " + conv.error().message);
  return conv;
}

}  // namespace dsa
