// Streaming DSML parser (see dsml_parser.hpp). A state machine over the text received so far: in
// each state it looks for the earliest marker that ends that state. A marker is acted on only once
// it is complete and no other marker could still start before it, so decisions never depend on
// how the text was chunked.
#include "engine/chat/dsml_parser.hpp"

#include <array>
#include <optional>
#include <span>

#include "engine/chat/dsv32_format.hpp"
#include "engine/chat/py_json.hpp"

namespace dsa {

namespace {

const std::string tool_block_start = std::string("\n\n") + std::string(dsv32::function_calls_open);

// Markers each state looks for. A tool-call block also starts without the blank line before it.
const std::array<std::string_view, 4> reasoning_markers = {dsv32::think_end, tool_block_start,
                                                           dsv32::function_calls_open, dsv32::eos};
const std::array<std::string_view, 3> content_markers = {tool_block_start, dsv32::function_calls_open, dsv32::eos};
const std::array<std::string_view, 3> block_markers = {dsv32::invoke_open, dsv32::function_calls_close, dsv32::eos};
const std::array<std::string_view, 2> head_markers = {">", dsv32::eos};
const std::array<std::string_view, 4> invoke_markers = {dsv32::parameter_open, dsv32::invoke_close,
                                                        dsv32::function_calls_close, dsv32::eos};
const std::array<std::string_view, 5> value_markers = {dsv32::parameter_close, dsv32::parameter_open,
                                                       dsv32::invoke_close, dsv32::function_calls_close, dsv32::eos};
const std::array<std::string_view, 1> eos_markers = {dsv32::eos};

// Length of the longest prefix of `s` that does not end inside a UTF-8 character, so streamed
// deltas are always whole characters.
size_t whole_utf8_prefix(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead byte
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len > back ? s.size() - back : s.size();
  }
  return s.size();
}

struct Match {
  size_t pos;
  std::string_view marker;
};

// The earliest complete marker at or after `from`. When the text ends inside what could still
// become a marker (and more text may come), returns nothing and sets *hold to where it starts;
// with no marker in sight *hold is the end of the text.
std::optional<Match> find_marker(std::string_view text, size_t from, std::span<const std::string_view> markers,
                                 bool at_end, size_t* hold) {
  for (size_t i = from; i < text.size(); ++i) {
    for (std::string_view m : markers) {
      if (text[i] != m[0]) continue;
      const std::string_view rest = text.substr(i);
      if (rest.size() >= m.size()) {
        if (rest.substr(0, m.size()) == m) return Match{i, m};
      } else if (!at_end && m.substr(0, rest.size()) == rest) {
        *hold = i;
        return std::nullopt;
      }
    }
  }
  *hold = text.size();
  return std::nullopt;
}

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

std::string quote_excerpt(std::string_view s) {
  constexpr size_t max_chars = 40;
  std::string out(s.substr(0, max_chars));
  if (s.size() > max_chars) out += "...";
  return "'" + out + "'";
}

// ` name="x" string="true"` -> [(name, x), (string, true)]; nothing when malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_attributes(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> attrs;
  size_t i = 0;
  for (;;) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    if (i == s.size()) return attrs;
    const size_t eq = s.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"') return std::nullopt;
    const size_t close = s.find('"', eq + 2);
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view key = s.substr(i, eq - i);
    if (key.empty() || key.find_first_of(" \t\n\"") != std::string_view::npos) return std::nullopt;
    attrs.emplace_back(std::string(key), std::string(s.substr(eq + 2, close - eq - 2)));
    i = close + 1;
  }
}

}  // namespace

std::span<const std::string_view> DsmlStreamParser::markers() const {
  switch (state_) {
    case State::reasoning: return reasoning_markers;
    case State::content: return content_markers;
    case State::block: return block_markers;
    case State::invoke_head:
    case State::param_head: return head_markers;
    case State::invoke_body: return invoke_markers;
    case State::param_value: return value_markers;
    case State::after_block:
    case State::done: return eos_markers;
  }
  return eos_markers;
}

DsmlStreamParser::DsmlStreamParser(bool thinking)
    : state_(thinking ? State::reasoning : State::content) {}

void DsmlStreamParser::error(std::string message) { errors_.push_back(std::move(message)); }

void DsmlStreamParser::feed(std::string_view text, StreamSink* sink) {
  buf_ += text;
  sink_ = sink;
  advance(/*at_end=*/false);
}

void DsmlStreamParser::emit_text(std::string_view text) {
  if (text.empty()) return;
  if (state_ == State::reasoning) {
    turn_.reasoning += text;
    if (sink_) sink_->on_reasoning(text);
  } else {
    turn_.content += text;
    if (sink_) sink_->on_content(text);
  }
}

// Text between elements of the tool-call block: only the ">" closing the block's opening tag and
// whitespace belong there.
void DsmlStreamParser::check_gap(std::string_view gap, std::string_view where) {
  if (first_gap_ && state_ == State::block) {
    first_gap_ = false;
    if (!gap.empty() && gap[0] == '>') {
      gap.remove_prefix(1);
    } else {
      error("the <｜DSML｜function_calls> tag is missing its '>'");
    }
  }
  if (!is_blank(gap)) error("unexpected text " + quote_excerpt(gap) + " " + std::string(where) + " was ignored");
}

void DsmlStreamParser::start_call(std::string_view head) {
  call_name_.clear();
  params_.clear();
  call_valid_ = false;
  const auto attrs = parse_attributes(head);
  if (attrs) {
    for (const auto& [key, value] : *attrs) {
      if (key == "name") {
        call_name_ = value;
        call_valid_ = !value.empty();
      } else {
        error("unknown attribute '" + key + "' of <｜DSML｜invoke> was ignored");
      }
    }
  }
  if (!call_valid_) error("a tool call without a valid name=\"...\" attribute (" + quote_excerpt(head) + ") was dropped");
}

void DsmlStreamParser::start_param(std::string_view head) {
  param_ = Param{};
  const auto attrs = parse_attributes(head);
  if (!attrs) error("malformed <｜DSML｜parameter" + std::string(head) + "> in tool call '" + call_name_ + "'");
  for (const auto& [key, value] : attrs.value_or(decltype(attrs)::value_type{})) {
    if (key == "name") param_.name = value;
    else if (key == "string") param_.string_attr = value;
    else error("unknown attribute '" + key + "' of parameter in tool call '" + call_name_ + "' was ignored");
  }
  if (param_.string_attr != "true" && param_.string_attr != "false") {
    error("parameter '" + param_.name + "' of tool call '" + call_name_ + "' has string=\"" + param_.string_attr +
          "\" (expected \"true\" or \"false\"); it was read as JSON when valid, else as a string");
  }
}

void DsmlStreamParser::add_param(std::string_view value) {
  param_.value = std::string(value);
  for (const Param& p : params_) {
    if (p.name == param_.name) {
      error("parameter '" + param_.name + "' of tool call '" + call_name_ + "' is given twice; the first value was kept");
      return;
    }
  }
  params_.push_back(std::move(param_));
  param_ = Param{};
}

void DsmlStreamParser::complete_call() {
  if (!call_valid_) return;
  std::string args = "{";
  for (const Param& p : params_) {
    if (args.size() > 1) args += ", ";
    args += py_json_string(p.name);
    args += ": ";
    const bool as_json = p.string_attr != "true" && json::accept(p.value);
    if (p.string_attr == "false" && !as_json) {
      error("parameter '" + p.name + "' of tool call '" + call_name_ +
            "' has string=\"false\" but is not valid JSON; it was passed as a string");
    }
    args += as_json ? p.value : py_json_string(p.value);
  }
  args += "}";
  ToolCall call{"call_" + std::to_string(turn_.tool_calls.size()), call_name_, std::move(args)};
  if (sink_) sink_->on_tool_call(call);
  turn_.tool_calls.push_back(std::move(call));
  call_valid_ = false;
}

void DsmlStreamParser::drop_call() {
  if (call_valid_) error("tool call '" + call_name_ + "' was cut off before its </｜DSML｜invoke> and was dropped");
  call_valid_ = false;
}

void DsmlStreamParser::advance(bool at_end) {
  while (state_ != State::done) {
    size_t hold = 0;
    const auto match = find_marker(buf_, pos_, markers(), at_end, &hold);
    const bool streams = state_ == State::reasoning || state_ == State::content;
    if (!match) {
      pos_ = hold;
      if (streams) {
        const std::string_view ready = std::string_view(buf_).substr(segment_start_, pos_ - segment_start_);
        const size_t n = at_end ? ready.size() : whole_utf8_prefix(ready);
        emit_text(ready.substr(0, n));
        segment_start_ += n;
      }
      return;
    }
    const std::string_view segment = std::string_view(buf_).substr(segment_start_, match->pos - segment_start_);
    const std::string_view m = match->marker;
    // By default the marker is consumed; a state that leaves it to the next one resets these.
    pos_ = segment_start_ = match->pos + m.size();
    if (m == dsv32::eos) saw_eos_ = true;

    switch (state_) {
      case State::reasoning:
      case State::content:
        emit_text(segment);
        if (m == dsv32::think_end) {
          state_ = State::content;
        } else if (m == dsv32::eos) {
          if (state_ == State::reasoning) error("the reply ended inside the thinking block (no </think>)");
          state_ = State::done;
        } else {
          if (state_ == State::reasoning) error("the tool calls were not preceded by </think>");
          state_ = State::block;
        }
        break;
      case State::block:
        check_gap(segment, "in the tool-call block");
        if (m == dsv32::invoke_open) state_ = State::invoke_head;
        else if (m == dsv32::function_calls_close) state_ = State::after_block;
        else {
          error("the reply ended inside the tool-call block (no </｜DSML｜function_calls>)");
          state_ = State::done;
        }
        break;
      case State::invoke_head:
      case State::param_head:
        if (m == dsv32::eos) {
          if (state_ == State::param_head) drop_call();
          error("the reply ended inside a DSML tag");
          state_ = State::done;
        } else if (state_ == State::invoke_head) {
          start_call(segment);
          state_ = State::invoke_body;
        } else {
          start_param(segment);
          state_ = State::param_value;
        }
        break;
      case State::invoke_body:
        check_gap(segment, "in tool call '" + call_name_ + "'");
        if (m == dsv32::parameter_open) {
          state_ = State::param_head;
        } else if (m == dsv32::invoke_close) {
          complete_call();
          state_ = State::block;
        } else if (m == dsv32::function_calls_close) {
          if (call_valid_) error("tool call '" + call_name_ + "' is missing its </｜DSML｜invoke>");
          complete_call();
          state_ = State::after_block;
        } else {
          drop_call();
          error("the reply ended inside the tool-call block (no </｜DSML｜function_calls>)");
          state_ = State::done;
        }
        break;
      case State::param_value:
        if (m != dsv32::parameter_close) {
          error("parameter '" + param_.name + "' of tool call '" + call_name_ + "' is missing its </｜DSML｜parameter>");
          // The marker that ended the value is handled by the enclosing invoke.
          pos_ = segment_start_ = match->pos;
        }
        add_param(segment);
        state_ = State::invoke_body;
        break;
      case State::after_block:
        if (!is_blank(segment)) error("text after </｜DSML｜function_calls> " + quote_excerpt(segment) + " was ignored");
        state_ = State::done;
        break;
      case State::done: break;
    }
  }
}

AssistantTurn DsmlStreamParser::finish(bool hit_eos) {
  advance(/*at_end=*/true);
  const std::string_view rest = std::string_view(buf_).substr(segment_start_);
  switch (state_) {
    case State::reasoning: error("the reply ended inside the thinking block (no </think>)"); break;
    case State::content: break;
    case State::after_block:
      if (!is_blank(rest)) error("text after </｜DSML｜function_calls> " + quote_excerpt(rest) + " was ignored");
      break;
    case State::done:
      if (!is_blank(rest)) error("text after the end of the reply " + quote_excerpt(rest) + " was ignored");
      break;
    default:
      if (state_ != State::block && state_ != State::invoke_head) drop_call();
      error("the reply ended inside the tool-call block (no </｜DSML｜function_calls>)");
      break;
  }
  for (std::string_view special : {dsv32::bos, dsv32::eos, dsv32::think_start, dsv32::think_end, dsv32::dsml}) {
    if (turn_.reasoning.find(special) != std::string::npos || turn_.content.find(special) != std::string::npos)
      error("unexpected " + std::string(special) + " inside the reasoning or content");
  }
  if (!errors_.empty()) {
    constexpr size_t max_listed = 6;
    std::string message = "malformed reply: ";
    for (size_t i = 0; i < errors_.size() && i < max_listed; ++i) message += (i ? "; " : "") + errors_[i];
    if (errors_.size() > max_listed) message += "; and " + std::to_string(errors_.size() - max_listed) + " more problems";
    turn_.format_error = FormatError{std::move(message)};
  }
  if (!turn_.tool_calls.empty()) turn_.finish = FinishReason::tool_calls;
  else if (hit_eos || saw_eos_) turn_.finish = FinishReason::stop;
  else turn_.finish = FinishReason::length;
  turn_.raw_text = buf_;
  return std::move(turn_);
}

AssistantTurn parse_completion(std::string_view text, bool thinking) {
  DsmlStreamParser parser(thinking);
  parser.feed(text, nullptr);
  return parser.finish(text.find(dsv32::eos) != std::string_view::npos);
}

}  // namespace dsa
