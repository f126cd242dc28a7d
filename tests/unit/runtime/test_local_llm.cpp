// LocalLlm end to end on tiny checkpoints: raw completion reproduces the golden greedy ids, chat
// turns come back parsed with streamed deltas equal to the final turn and exact usage, prefix reuse
// shows in usage (over a 50-step tool loop and after a discard-all reset), stop strings and should_stop end generation, ids with no token are never sampled,
// concurrent turns each get what they get alone.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "engine/chat/dsml_parser.hpp"
#include "engine/chat/encoder.hpp"
#include "engine/backend/backend_cpu.hpp"
#include "engine/model/backend_model.hpp"
#include "engine/dist/comm.hpp"
#include "engine/model/make_model.hpp"
#include "engine/model/model.hpp"
#include "engine/model/rank_group.hpp"
#include "engine/model/rank_processes.hpp"
#include "engine/runtime/local_llm.hpp"
#include "engine/tokenizer/make_tokenizer.hpp"
#include "tests/unit/runtime/runtime_test_support.hpp"
#include "tests/unit/tokenizer/deepseek_v3_fixture.hpp"

using namespace dsa;
using dsa::test::golden_fp8;
using dsa::test::load_tiny;

namespace {

Tokenizer made_tokenizer(int64_t vocab) {
  auto text = make_tokenizer_json(vocab);
  REQUIRE(text.ok());
  auto tok = Tokenizer::from_json_text(*text, "generated tokenizer.json");
  REQUIRE(tok.ok());
  return std::move(*tok);
}

// A make-model tiny checkpoint (random weights, generated tokenizer) in a temporary directory.
struct TinyModelDir {
  test::TempDir tmp{"dsa-local-llm"};
  std::filesystem::path dir = tmp / "tiny";
  TinyModelDir() {
    auto cfg = preset_config("tiny");
    REQUIRE(cfg.ok());
    REQUIRE(make_model(dir, *cfg, {.seed = 3}).ok());
  }
};

struct RecordingSink final : StreamSink {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
  int polls = 0, stop_after = -1;
  void on_reasoning(std::string_view d) override { reasoning += d; }
  void on_content(std::string_view d) override { content += d; }
  void on_tool_call(const ToolCall& c) override { calls.push_back(c); }
  bool should_stop() override { return ++polls == stop_after; }
};

std::vector<Message> ask(const std::string& text) { return {Message{.role = Role::user, .content = text}}; }

// Each ask as a chat turn of its own, all at once, one thread each (streaming into (*sinks)[i]).
std::vector<std::optional<Result<AssistantTurn>>> concurrent_turns(LocalLlm& llm, const std::vector<std::string>& asks,
                                                                   const GenOptions& opt,
                                                                   std::vector<RecordingSink>* sinks = nullptr) {
  std::vector<std::optional<Result<AssistantTurn>>> turns(asks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < asks.size(); ++i)
    threads.emplace_back([&, i] { turns[i].emplace(llm.generate(ask(asks[i]), {}, opt, sinks ? &(*sinks)[i] : nullptr)); });
  for (auto& t : threads) t.join();
  return turns;
}

}  // namespace

TEST_CASE("complete() reproduces the golden greedy ids and streams their text") {
  const auto golden = golden_fp8();
  // DeepSeek-V3's own tokenizer: every id of the tiny vocabulary has a token, so none is masked.
  LocalLlm llm("tiny-fp8", test::deepseek_v3(), load_tiny(), 256);
  GenerateParams p;
  p.max_tokens = int64_t(golden.decode_ids.size());
  for (int run = 0; run < 2; ++run) {
    CAPTURE(run);
    std::string text;
    auto g = llm.complete(golden.prompt, p, [&](std::string_view t) { text += t; });
    REQUIRE(g.ok());
    CHECK(g->tokens == golden.decode_ids);
    CHECK(text == llm.tokenizer().decode(golden.decode_ids));
    CHECK(g->cached_tokens == (run == 0 ? 0 : int64_t(golden.prompt.size()) - 2));
  }
  // A request extending the first prompt reuses all of it.
  std::vector<int32_t> longer = golden.prompt;
  longer.push_back(golden.decode_ids[0] == 5 ? 6 : 5);
  longer.push_back(7);
  p.max_tokens = 2;
  auto g = llm.complete(longer, p, {});
  REQUIRE(g.ok());
  CHECK(g->cached_tokens == int64_t(golden.prompt.size()));
}

TEST_CASE("ids below vocab_size with no token are never sampled") {
  const Tokenizer small = made_tokenizer(2048);  // its BPE vocabulary is short: ids >= n_ids() have no token
  REQUIRE(small.n_ids() < 2000);
  LocalLlm llm("tiny-fp8", small, load_tiny(), 256);
  GenerateParams p;
  p.max_tokens = 60;
  p.sampling = {.temperature = 1.5, .seed = 17};
  auto g = llm.complete(golden_fp8().prompt, p, {});
  REQUIRE(g.ok());
  CHECK(g->tokens.size() == 60);
  for (int32_t id : g->tokens) {
    CAPTURE(id);
    CHECK(!small.token_bytes(id).empty());
  }
}

TEST_CASE("a chat turn on a make-model checkpoint: parsed, streamed, with exact usage") {
  TinyModelDir model;
  auto opened = LocalLlm::open(model.dir, AttentionMode::sparse, 512);
  REQUIRE_MESSAGE(opened.ok(), (opened.ok() ? "" : opened.error().message));
  LocalLlm& llm = **opened;
  CHECK(llm.info().exact_token_count);
  CHECK(llm.info().context_window == 512);
  CHECK(llm.info().name == "tiny");

  const std::vector<Message> messages = ask("Write a function that adds two numbers.");
  const std::string prompt_text = join_text(encode_messages(messages, {}, EncodeOptions{}));
  REQUIRE(prompt_text.ends_with("<think>"));
  const int64_t n_prompt = int64_t(llm.tokenizer().encode(prompt_text, true).size());
  CHECK(llm.count_tokens(messages, {}, true) == n_prompt);

  GenOptions opt;
  opt.temperature = 1.0;
  opt.seed = 9;
  opt.max_tokens = 24;
  RecordingSink sink;
  auto turn = llm.generate(messages, {}, opt, &sink);
  REQUIRE_MESSAGE(turn.ok(), (turn.ok() ? "" : turn.error().message));
  CHECK(turn->usage.prompt_tokens == n_prompt);
  CHECK(turn->usage.cached_tokens == 0);
  CHECK(turn->usage.completion_tokens >= 1);
  CHECK(turn->usage.completion_tokens <= 24);
  CHECK(turn->usage.reasoning_tokens <= turn->usage.completion_tokens);
  if (turn->finish == FinishReason::length) CHECK(turn->usage.completion_tokens == 24);
  // Streamed deltas add up to the turn, and the turn is what a whole-text parse gives.
  CHECK(sink.reasoning == turn->reasoning);
  CHECK(sink.content == turn->content);
  CHECK(sink.calls.size() == turn->tool_calls.size());
  const AssistantTurn whole = parse_completion(turn->raw_text, true);
  CHECK(whole.reasoning == turn->reasoning);
  CHECK(whole.content == turn->content);

  // The next user turn extends the conversation: everything up to the first "<｜Assistant｜>" is
  // reused (the "<think>" after it becomes "</think>" once the turn is history).
  std::vector<Message> next = messages;
  next.push_back(Message{.role = Role::assistant, .content = turn->content, .reasoning_content = turn->reasoning,
                         .tool_calls = turn->tool_calls});
  if (!turn->tool_calls.empty()) {
    for (const ToolCall& c : turn->tool_calls) next.push_back(Message{.role = Role::tool, .content = "ok", .tool_call_id = c.id});
  }
  next.push_back(Message{.role = Role::user, .content = "Thanks. Now subtract."});
  const size_t stable = stable_prefix_bytes(messages, {}, EncodeOptions{});
  const int64_t n_stable = int64_t(llm.tokenizer().encode(prompt_text.substr(0, stable), true).size());
  auto second = llm.generate(next, {}, opt, nullptr);
  REQUIRE(second.ok());
  CHECK(second->usage.cached_tokens == n_stable);
  CHECK(second->usage.prompt_tokens == llm.count_tokens(next, {}, true));
}

TEST_CASE("stop strings and should_stop end the turn early") {
  TinyModelDir model;
  auto opened = LocalLlm::open(model.dir, AttentionMode::sparse, 256);
  REQUIRE(opened.ok());
  LocalLlm& llm = **opened;
  const std::vector<Message> messages = ask("Tell me a story.");
  GenOptions opt;
  opt.thinking = false;
  opt.max_tokens = 32;
  auto full = llm.generate(messages, {}, opt, nullptr);
  REQUIRE(full.ok());
  const std::string raw = full->raw_text;
  REQUIRE(raw.size() >= 8);

  // A stop string from the middle of the greedy text: the same greedy run stops right before it.
  const std::string stop = raw.substr(raw.size() / 2, 3);
  opt.stop = {"never-appears-anywhere", stop};
  RecordingSink sink;
  auto cut = llm.generate(messages, {}, opt, &sink);
  REQUIRE(cut.ok());
  CHECK(cut->raw_text == raw.substr(0, raw.find(stop)));
  CHECK(sink.content + sink.reasoning == cut->content + cut->reasoning);
  CHECK(sink.content.find(stop) == std::string::npos);
  CHECK(cut->finish == FinishReason::stop);
  CHECK(cut->usage.completion_tokens < full->usage.completion_tokens);

  opt.stop.clear();
  RecordingSink stopper;
  stopper.stop_after = 3;
  auto interrupted = llm.generate(messages, {}, opt, &stopper);
  REQUIRE(interrupted.ok());
  CHECK(interrupted->usage.completion_tokens == 3);
  CHECK(interrupted->finish == FinishReason::stop);
}

TEST_CASE("conversations the encoder rejects are errors, and still countable") {
  TinyModelDir model;
  auto opened = LocalLlm::open(model.dir, AttentionMode::sparse, 128);
  REQUIRE(opened.ok());
  const std::vector<Message> bad = {Message{.role = Role::user, .content = "hi"},
                                    Message{.role = Role::tool, .content = "orphan result"}};
  auto turn = (*opened)->generate(bad, {}, GenOptions{}, nullptr);
  CHECK_FALSE(turn.ok());
  CHECK((*opened)->count_tokens(bad, {}, true) > 0);
  auto missing = LocalLlm::open(model.tmp / "nowhere", AttentionMode::sparse, 128);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("nowhere") != std::string::npos);
}

TEST_CASE("concurrent chat turns each stream and get what they get alone") {
  TinyModelDir model;
  auto shared = LocalLlm::open(model.dir, AttentionMode::sparse, 512);
  auto single = LocalLlm::open(model.dir, AttentionMode::sparse, 512);
  REQUIRE(shared.ok());
  REQUIRE(single.ok());
  const std::vector<std::string> asks = {"Tell me a story.", "Write a function that adds two numbers.",
                                         "What is two plus two?", "Name three rivers."};
  GenOptions opt;
  opt.max_tokens = 24;
  opt.seed = 4;
  opt.temperature = 0.8;
  std::vector<RecordingSink> sinks(asks.size());
  const auto turns = concurrent_turns(**shared, asks, opt, &sinks);
  for (size_t i = 0; i < asks.size(); ++i) {
    CAPTURE(asks[i]);
    REQUIRE(turns[i]->ok());
    const AssistantTurn& turn = turns[i]->value();
    auto ref = (*single)->generate(ask(asks[i]), {}, opt, nullptr);
    REQUIRE(ref.ok());
    CHECK(turn.raw_text == ref->raw_text);
    CHECK(turn.usage.completion_tokens == ref->usage.completion_tokens);
    CHECK(sinks[i].reasoning == turn.reasoning);
    CHECK(sinks[i].content == turn.content);
  }
}

TEST_CASE("the cache pool holds `concurrency` full requests at once; a pool for one makes them take turns") {
  TinyModelDir model;
  // Four requests of about 200 prompt tokens each in a 256-token context.
  std::vector<std::string> asks;
  for (const char* topic : {"rivers", "bridges", "mountains", "harbours"}) {
    std::string text = std::string("Describe ") + topic + ":";
    for (int i = 0; i < 60; ++i) text += " " + std::to_string(i * 7 + int(text.size()) % 5);
    asks.push_back(text);
  }
  GenOptions opt;
  opt.max_tokens = 24;
  opt.seed = 1;
  opt.temperature = 0.8;
  auto run_all = [&](LocalLlm& llm) {
    for (const auto& t : concurrent_turns(llm, asks, opt)) {
      REQUIRE(t->ok());
      CHECK(t->value().usage.prompt_tokens > 150);
      CHECK(t->value().usage.prompt_tokens + t->value().usage.completion_tokens <= 256);
    }
  };
  auto four = LocalLlm::open(model.dir, AttentionMode::sparse, 256, 4);
  REQUIRE(four.ok());
  run_all(**four);
  CHECK((*four)->preemptions() == 0);
  CHECK((*four)->peak_running() == 4);
  auto one = LocalLlm::open(model.dir, AttentionMode::sparse, 256, 1);
  REQUIRE(one.ok());
  run_all(**one);
  CHECK((*one)->peak_running() == 1);
}

TEST_CASE("a 50-step tool loop prefills only each step's new tokens; after discard-all only the changed suffix") {
  // The agent loop's request pattern: the conversation grows by one assistant turn (reasoning and a
  // tool call) and its tool result per step, reasoning kept (no new user message). The assistant
  // turns are scripted, not the sampled ones, so the generated ids in the cache never match: the
  // reusable prefix is exactly the previous prompt, and what a step prefills is what it adds.
  TinyModelDir model;
  auto opened = LocalLlm::open(model.dir, AttentionMode::sparse, 16384);
  REQUIRE(opened.ok());
  LocalLlm& llm = **opened;
  const std::vector<ToolSpec> tools = {
      {.name = "shell",
       .description = "Run a shell command",
       .parameters = json{{"type", "object"}, {"properties", {{"command", {{"type", "string"}}}}}}}};
  std::vector<Message> messages = {{.role = Role::system, .content = "You are a careful coding agent."},
                                   {.role = Role::user, .content = "Find the file that defines main."}};
  const std::vector<Message> task = messages;
  GenOptions opt;
  opt.max_tokens = 2;
  opt.temperature = 0;

  int64_t previous_prompt = 0, steps_from_cache = 0, min_share_from_20 = 100;
  for (int step = 1; step <= 50; ++step) {
    CAPTURE(step);
    const int64_t prompt = llm.count_tokens(messages, tools, true);
    auto turn = llm.generate(messages, tools, opt, nullptr);
    REQUIRE(turn.ok());
    const Usage& u = turn->usage;
    CHECK(u.prompt_tokens == prompt);
    const int64_t prefilled = u.prompt_tokens - u.cached_tokens;
    if (step > 1) {
      // The new tokens, plus at most the two prompt ids the scheduler recomputes for the logits of
      // the last prompt id (usable_prefix) when the previous prompt ended a whole prefill.
      CHECK(prefilled <= prompt - previous_prompt + 2);
      CHECK(u.cached_tokens >= previous_prompt - 2);
      steps_from_cache += u.cached_tokens * 100 >= 95 * u.prompt_tokens;
      if (step >= 20) min_share_from_20 = std::min(min_share_from_20, u.cached_tokens * 100 / u.prompt_tokens);
    }
    previous_prompt = prompt;
    const std::string id = "call_" + std::to_string(step);
    messages.push_back({.role = Role::assistant,
                        .content = "",
                        .reasoning_content = "Look in directory " + std::to_string(step) + ".",
                        .tool_calls = {{.id = id, .name = "shell",
                                        .arguments = "{\"command\":\"ls src/d" + std::to_string(step) + "\"}"}}});
    messages.push_back({.role = Role::tool, .content = "a.c\nb.c\n", .tool_call_id = id});
  }
  // Each step adds ~150 tokens (this tokenizer has few merges), so from step 20 on, with prompts
  // past 3,000 tokens, every prompt is at least 95% cached.
  CHECK(min_share_from_20 >= 95);
  CHECK(steps_from_cache >= 30);

  // discard-all: back to system + task, with the note the context policy inserts. The task's prefix
  // is still cached; only the note and the new generation prompt are prefilled (give or take the
  // one token that the tokenizer may merge across the prefix's end).
  std::vector<Message> reset = task;
  reset.push_back({.role = Role::user, .content = "The earlier tool calls were dropped to save room. Continue."});
  const size_t stable = stable_prefix_bytes(task, tools, EncodeOptions{});
  const std::string task_text = join_text(encode_messages(task, tools, EncodeOptions{}));
  const int64_t n_stable = int64_t(llm.tokenizer().encode(task_text.substr(0, stable), true).size());
  const int64_t prompt = llm.count_tokens(reset, tools, true);
  auto after = llm.generate(reset, tools, opt, nullptr);
  REQUIRE(after.ok());
  CHECK(after->usage.cached_tokens >= n_stable - 1);
  CHECK(after->usage.prompt_tokens - after->usage.cached_tokens <= prompt - n_stable + 1);
  CHECK(prompt - n_stable < 40);  // the suffix: the note and the generation prompt
}

TEST_CASE("LocalLlm over BackendModel (CPU backend): concurrent turns get what they get alone, prefixes are reused") {
  TinyModelDir model;
  const auto open_backend = [&](int64_t concurrency) {
    auto tok = Tokenizer::load(model.dir / "tokenizer.json");
    REQUIRE(tok.ok());
    auto m = BackendModel::load(model.dir, AttentionMode::sparse, std::make_unique<CpuBackend>());
    REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
    return std::make_unique<LocalLlm>("tiny", std::move(*tok), std::move(*m), 512, concurrency);
  };
  auto shared = open_backend(3);
  auto single = open_backend(1);
  const std::vector<std::string> asks = {"Tell me a story.", "Write a function that adds two numbers.",
                                         "What is two plus two?"};
  GenOptions opt;
  opt.max_tokens = 16;
  opt.seed = 4;
  opt.temperature = 0.8;
  const auto turns = concurrent_turns(*shared, asks, opt);
  for (size_t i = 0; i < asks.size(); ++i) {
    CAPTURE(asks[i]);
    REQUIRE(turns[i]->ok());
    auto ref = single->generate(ask(asks[i]), {}, opt, nullptr);
    REQUIRE(ref.ok());
    CHECK(turns[i]->value().raw_text == ref->raw_text);
  }

  // The same conversation again, one turn longer: its prefix comes from the cache (in the backend's
  // memory), and the turn is what a fresh engine gives.
  std::vector<Message> next = ask(asks[0]);
  next.push_back(Message{.role = Role::assistant, .content = "Once upon a time."});
  next.push_back(Message{.role = Role::user, .content = "Go on."});
  const size_t stable = stable_prefix_bytes(ask(asks[0]), {}, EncodeOptions{});
  const std::string first_text = join_text(encode_messages(ask(asks[0]), {}, EncodeOptions{}));
  const int64_t n_stable = int64_t(shared->tokenizer().encode(first_text.substr(0, stable), true).size());
  auto again = shared->generate(next, {}, opt, nullptr);
  REQUIRE(again.ok());
  CHECK(again->usage.cached_tokens >= n_stable - 1);
  auto fresh = open_backend(1)->generate(next, {}, opt, nullptr);
  REQUIRE(fresh.ok());
  CHECK(fresh->usage.cached_tokens == 0);
  CHECK(again->raw_text == fresh->raw_text);
}

TEST_CASE("LocalLlm over a RankGroup of two CPU-backend ranks: one rank's turns, batched, with prefixes reused") {
  TinyModelDir model;
  const auto open_group = [&](int n_ranks, int64_t concurrency) {
    auto tok = Tokenizer::load(model.dir / "tokenizer.json");
    REQUIRE(tok.ok());
    auto comms = make_thread_comms(n_ranks);
    std::vector<std::unique_ptr<ForwardPass>> ranks;
    for (int r = 0; r < n_ranks; ++r) {
      auto m = BackendModel::load(model.dir, AttentionMode::sparse, std::make_unique<CpuBackend>(), {},
                                  comms[size_t(r)].get());
      REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
      (*m)->set_check_topk(true);  // a false alarm would fail the turns
      ranks.push_back(std::move(*m));
    }
    auto group = std::make_unique<RankGroup>(std::move(comms), std::move(ranks));
    return std::make_unique<LocalLlm>("tiny", std::move(*tok), std::move(group), 512, concurrency);
  };
  auto group = open_group(2, 3);
  auto one = open_group(1, 1);
  const std::vector<std::string> asks = {"Tell me a story.", "Write a function that adds two numbers.",
                                         "What is two plus two?"};
  GenOptions opt;
  opt.max_tokens = 12;
  opt.temperature = 0;
  const auto turns = concurrent_turns(*group, asks, opt);
  for (size_t i = 0; i < asks.size(); ++i) {
    CAPTURE(asks[i]);
    REQUIRE(turns[i]->ok());
    auto ref = one->generate(ask(asks[i]), {}, opt, nullptr);
    REQUIRE(ref.ok());
    CHECK(turns[i]->value().raw_text == ref->raw_text);
  }
  // A longer conversation starting like one already run: the pages of its prefix are copied to a
  // free slot (in rank 0's cache and the mirror), and the turn is the single rank's.
  std::vector<Message> next = ask(asks[1]);
  next.push_back(Message{.role = Role::assistant, .content = "def add(a, b): return a + b"});
  next.push_back(Message{.role = Role::user, .content = "Now subtract."});
  auto again = group->generate(next, {}, opt, nullptr);
  REQUIRE(again.ok());
  CHECK(again->usage.cached_tokens > 0);
  auto ref = one->generate(next, {}, opt, nullptr);
  REQUIRE(ref.ok());
  CHECK(again->raw_text == ref->raw_text);
}

TEST_CASE("LocalLlm over ProcessRanks (two CPU ranks joined by sockets, rank 1 on a thread): the thread ranks' turns") {
  TinyModelDir model;
  auto tok = Tokenizer::load(model.dir / "tokenizer.json");
  REQUIRE(tok.ok());
  // Rank 1 as a worker process runs it, on a thread: join, load its share, serve.
  auto group = SocketGroup::listen(2);
  REQUIRE(group.ok());
  Result<void> served = make_error("rank 1 did not run");
  std::thread worker([&, path = (*group)->path(), token = (*group)->token()] {
    auto g = SocketGroup::connect(path, token, 1, 2);
    REQUIRE(g.ok());
    auto comm = make_socket_comm(**g);
    auto m = Model::load(model.dir, AttentionMode::sparse, comm.get());
    REQUIRE(m.ok());
    served = serve_rank(**g, **m);
  });
  REQUIRE((*group)->accept_all(30.0).ok());
  auto comm = make_socket_comm(**group);
  auto local = Model::load(model.dir, AttentionMode::sparse, comm.get());
  REQUIRE(local.ok());
  {
    LocalLlm llm("tiny", std::move(*tok),
                 std::make_unique<ProcessRanks>(std::move(*group), std::move(comm), std::move(*local)), 512, 3);
    // The reference: the same two ranks on threads of one process.
    auto tok1 = Tokenizer::load(model.dir / "tokenizer.json");
    REQUIRE(tok1.ok());
    auto comms = make_thread_comms(2);
    std::vector<std::unique_ptr<ForwardPass>> ranks;
    for (int r = 0; r < 2; ++r) {
      auto m = Model::load(model.dir, AttentionMode::sparse, comms[size_t(r)].get());
      REQUIRE(m.ok());
      ranks.push_back(std::move(*m));
    }
    LocalLlm ref("tiny", std::move(*tok1), std::make_unique<RankGroup>(std::move(comms), std::move(ranks)), 512, 1);

    const std::vector<std::string> asks = {"Tell me a story.", "Write a function that adds two numbers.",
                                           "What is two plus two?"};
    GenOptions opt;
    opt.max_tokens = 12;
    opt.temperature = 0;
    const auto turns = concurrent_turns(llm, asks, opt);  // batched decode steps across the processes
    for (size_t i = 0; i < asks.size(); ++i) {
      CAPTURE(asks[i]);
      REQUIRE(turns[i]->ok());
      auto want = ref.generate(ask(asks[i]), {}, opt, nullptr);
      REQUIRE(want.ok());
      CHECK(turns[i]->value().raw_text == want->raw_text);
    }
    // A longer conversation starting like one already run: its prefix pages are copied in rank 0's
    // pool and, by message, in rank 1's.
    std::vector<Message> next = ask(asks[1]);
    next.push_back(Message{.role = Role::assistant, .content = "def add(a, b): return a + b"});
    next.push_back(Message{.role = Role::user, .content = "Now subtract."});
    auto again = llm.generate(next, {}, opt, nullptr);
    REQUIRE(again.ok());
    CHECK(again->usage.cached_tokens > 0);
    auto want = ref.generate(next, {}, opt, nullptr);
    REQUIRE(want.ok());
    CHECK(again->raw_text == want->raw_text);
  }  // closing the group stops rank 1
  worker.join();
  CHECK(served.ok());
}

TEST_CASE("open_model with rank processes: a worker that ends before joining is a one-line error, nothing left behind") {
  TinyModelDir model;
  OpenOptions options;
  options.ranks = 2;
  options.processes = true;
  options.rank_program = "/bin/false";  // a worker program that exits at once
  const auto t0 = std::chrono::steady_clock::now();
  auto opened = open_model(model.dir, options);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().message.find("rank 1 (process ") == 0);
  CHECK(opened.error().message.find("exited with status 1 before joining") != std::string::npos);
  CHECK(opened.error().message.find('\n') == std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));  // noticed, not timed out
  options.rank_program = "/nonexistent/dsagent";
  auto missing = open_model(model.dir, options);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("could not start its program (exit status 127) before joining") !=
        std::string::npos);
}
