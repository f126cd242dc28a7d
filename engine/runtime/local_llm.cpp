// LocalLlm (local_llm.hpp).
#include "engine/runtime/local_llm.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "engine/chat/dsml_parser.hpp"
#include "engine/chat/encoder.hpp"
#include "engine/runtime/tokenizer_check.hpp"

namespace dsa {

namespace {

// Stop strings over streamed text: text that could still become a stop string is held back, so
// nothing from a stop string (or after it) is ever passed on.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {
    std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
  }
  // Appends text; returns what is now certain to precede any stop string. Sets stopped() when one
  // is found (the text from it on is dropped).
  std::string push(std::string_view text) {
    pending_ += text;
    if (stops_.empty()) return std::exchange(pending_, {});
    size_t first = std::string::npos;
    for (const std::string& s : stops_) first = std::min(first, pending_.find(s));
    if (first != std::string::npos) {
      stopped_ = true;
      std::string out = pending_.substr(0, first);
      pending_.clear();
      return out;
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const std::string& s : stops_)
      for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
        if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
  }
  std::string flush() { return std::exchange(pending_, {}); }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

// Requests that run at once (each holds a slot); more wait. Idle slots keep their cached prefixes
// until their pages are needed.
constexpr int64_t kSlots = 64;

// Token count of a conversation the encoder cannot take: its texts as plain text.
int64_t count_plain(const Tokenizer& tok, const std::vector<Message>& messages) {
  int64_t n = 0;
  for (const Message& m : messages) {
    n += int64_t(tok.encode(m.content, false).size());
    if (m.reasoning_content) n += int64_t(tok.encode(*m.reasoning_content, false).size());
    for (const ToolCall& c : m.tool_calls)
      n += int64_t(tok.encode(c.name, false).size() + tok.encode(c.arguments, false).size());
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<LocalLlm>> LocalLlm::open(const std::filesystem::path& dir, AttentionMode mode,
                                                 int64_t max_context, int64_t concurrency, OpenOptions engine) {
  DSA_TRY(tok, load_checked_tokenizer(dir));
  engine.attention = mode;
  engine.context = max_context;
  engine.sequences = std::max<int64_t>(1, concurrency);
  DSA_TRY(model, open_model(dir, engine));
  std::string name = dir.filename().string();
  if (name.empty()) name = dir.parent_path().filename().string();
  return std::make_unique<LocalLlm>(std::move(name), std::move(tok), std::move(model), max_context, concurrency);
}

LocalLlm::LocalLlm(std::string name, Tokenizer tokenizer, std::unique_ptr<ForwardPass> model, int64_t max_context,
                   int64_t concurrency)
    : name_(std::move(name)),
      tokenizer_(std::move(tokenizer)),
      scheduler_([&] {
        const ModelConfig& cfg = model->config();
        const cpu::LatentFormat fmt = default_latent_format(cfg);
        const int64_t context = std::min(max_context, cfg.max_position_embeddings);
        // Each request's pages at the full context, and the spare page per running request the
        // scheduler keeps free.
        const int64_t n = std::max<int64_t>(1, concurrency);
        const int64_t pages_each = (context + kPageTokens - 1) / kPageTokens + 1;
        return std::make_unique<BatchScheduler>(
            std::move(model), fmt,
            SchedulerOptions{.max_context = context, .pool_tokens = pages_each * kPageTokens * n,
                             .n_slots = std::max(kSlots, n)});
      }()),
      think_end_id_(tokenizer_.token_id("</think>")) {
  const int64_t vocab = scheduler_->model().config().vocab_size;
  for (int64_t id = 0; id < vocab; ++id)
    if (tokenizer_.token_bytes(int32_t(id)).empty()) masked_ids_.push_back(int32_t(id));
}

std::vector<int32_t> LocalLlm::encode(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                      bool thinking) const {
  const EncodeOptions opt{.thinking = thinking, .drop_thinking = true, .add_bos = true};
  std::vector<int32_t> ids;
  for (const PromptPiece& piece : encode_messages(messages, tools, opt)) {
    const std::vector<int32_t> piece_ids = tokenizer_.encode(piece.text, piece.is_template);
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  return ids;
}

GenerateParams LocalLlm::params_from(const GenOptions& options) const {
  GenerateParams p;
  p.max_tokens = options.max_tokens;
  p.sampling = {.temperature = options.temperature, .top_p = options.top_p, .top_k = options.top_k,
                .seed = options.seed};
  p.masked_ids = masked_ids_;
  return p;
}

Result<AssistantTurn> LocalLlm::generate(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                         const GenOptions& options, StreamSink* sink) {
  if (auto r = check_conversation(messages); !r.ok()) return r.error();
  const std::vector<int32_t> prompt = encode(messages, tools, options.thinking);
  // The parser starts in reasoning exactly when the generation prompt opened a thinking block.
  const std::string_view think_start = "<think>";
  const std::string prompt_tail = tokenizer_.decode(std::span(prompt).last(std::min<size_t>(prompt.size(), 4)));
  const bool thinking = prompt_tail.ends_with(think_start);

  StreamDecoder decoder(tokenizer_);
  StopFilter stops(options.stop);
  DsmlStreamParser parser(thinking);
  const int32_t eos = int32_t(scheduler_->model().config().eos_token_id);
  bool interrupted = false;
  std::optional<int64_t> reasoning_end;  // tokens up to and including "</think>"
  int64_t n_generated = 0;
  const auto on_token = [&](int32_t id) {
    ++n_generated;
    if (id == think_end_id_ && !reasoning_end) reasoning_end = n_generated;
    if (id != eos) parser.feed(stops.push(decoder.push(id)), sink);
    if (stops.stopped()) return true;
    if (sink && sink->should_stop()) interrupted = true;
    return interrupted;
  };
  DSA_TRY(gen, scheduler_->generate(prompt, params_from(options), on_token));
  if (!stops.stopped()) parser.feed(stops.push(decoder.flush()) + stops.flush(), sink);

  AssistantTurn turn = parser.finish(gen.hit_eos);
  if ((stops.stopped() || interrupted) && turn.finish == FinishReason::length) turn.finish = FinishReason::stop;
  turn.usage.prompt_tokens = gen.prompt_tokens;
  turn.usage.completion_tokens = int64_t(gen.tokens.size());
  turn.usage.cached_tokens = gen.cached_tokens;
  if (thinking) turn.usage.reasoning_tokens = reasoning_end.value_or(int64_t(gen.tokens.size()));
  return turn;
}

int64_t LocalLlm::count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                               bool thinking) {
  if (!check_conversation(messages).ok()) return count_plain(tokenizer_, messages);
  return int64_t(encode(messages, tools, thinking).size());
}

ModelInfo LocalLlm::info() {
  return {.name = name_, .context_window = scheduler_->max_context(), .exact_token_count = true};
}

Result<Generation> LocalLlm::complete(std::span<const int32_t> prompt, const GenerateParams& params,
                                      const std::function<void(std::string_view text)>& on_text) {
  GenerateParams p = params;
  p.masked_ids = masked_ids_;
  StreamDecoder decoder(tokenizer_);
  const int32_t eos = int32_t(scheduler_->model().config().eos_token_id);
  DSA_TRY(gen, scheduler_->generate(prompt, p, [&](int32_t id) {
            if (id != eos && on_text) on_text(decoder.push(id));
            return false;
          }));
  if (on_text) on_text(decoder.flush());
  return gen;
}

}  // namespace dsa
