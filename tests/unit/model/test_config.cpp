// config.json parsing and validation, the presets, and parameter counts of the full model.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <future>
#include <nlohmann/json.hpp>

#include "engine/model/config.hpp"
#include "engine/model/inventory.hpp"
#include "tests/test_support.hpp"

using dsa::ModelConfig;
using nlohmann::json;

namespace {

json fixture_config(const char* name) {
  return json::parse(dsa::test::read_text(dsa::test::fixtures_dir() / "engine" / name / "config.json"));
}

// The error message of parsing `j`, or "" when it parses.
std::string parse_error(const json& j) {
  const auto r = dsa::parse_config(j.dump(), "config.json");
  return r.ok() ? "" : r.error().message;
}

}  // namespace

TEST_CASE("the tiny preset is the fixture's config.json, field by field") {
  const auto tiny = dsa::preset_config("tiny");
  REQUIRE(tiny.ok());
  const json fixture = fixture_config("tiny-fp8");
  const json ours = json::parse(dsa::config_to_json(*tiny));
  for (const auto& [key, value] : fixture.items()) {
    INFO("field " << key);
    REQUIRE(ours.contains(key));
    CHECK(ours[key] == value);
  }
  CHECK(ours.size() == fixture.size());

  ModelConfig bf16 = *tiny;
  bf16.fp8 = false;
  bf16.scale_fmt.clear();
  CHECK(json::parse(dsa::config_to_json(bf16)) == fixture_config("tiny-bf16"));
}

TEST_CASE("parsing the fixture gives the preset; a round trip through config_to_json is exact") {
  const auto parsed = dsa::load_config(dsa::test::fixtures_dir() / "engine/tiny-fp8/config.json");
  REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
  CHECK(parsed->fp8);
  CHECK(parsed->scale_fmt == "ue8m0");
  CHECK(parsed->weight_block_size == 128);
  CHECK(parsed->rope_scaling.factor == 40.0);
  CHECK(dsa::config_to_json(*parsed) == dsa::config_to_json(*dsa::preset_config("tiny")));
  const auto bf16 = dsa::load_config(dsa::test::fixtures_dir() / "engine/tiny-bf16/config.json");
  REQUIRE(bf16.ok());
  CHECK_FALSE(bf16->fp8);
}

TEST_CASE("errors name the file and the field") {
  const json base = fixture_config("tiny-fp8");
  CHECK(parse_error(base).empty());

  json j = base;
  j.erase("kv_lora_rank");
  CHECK(parse_error(j) == "config.json: field 'kv_lora_rank': missing");

  j = base;
  j["hidden_size"] = "128";
  CHECK(parse_error(j) == "config.json: field 'hidden_size': expected an integer, found \"128\"");

  j = base;
  j["norm_topk_prob"] = 1;
  CHECK(parse_error(j).starts_with("config.json: field 'norm_topk_prob': expected true or false"));

  j = base;
  j["model_type"] = "llama";
  CHECK(parse_error(j).starts_with("config.json: field 'model_type': unsupported value 'llama'"));

  j = base;
  j["rope_scaling"]["factor"] = "forty";
  CHECK(parse_error(j).starts_with("config.json: field 'rope_scaling.factor': expected a number"));

  j = base;
  j["quantization_config"]["weight_block_size"] = {128, 64};
  CHECK(parse_error(j).starts_with("config.json: field 'quantization_config.weight_block_size':"));

  j = base;
  j["quantization_config"]["quant_method"] = "awq";
  CHECK(parse_error(j).starts_with("config.json: field 'quantization_config.quant_method': unsupported value"));

  CHECK(parse_error(json::array()) == "config.json: expected a JSON object");
  CHECK(dsa::parse_config("{", "config.json").error().message.starts_with("config.json: not valid JSON (parse error"));
}

TEST_CASE("a bad value is quoted briefly on one line, however deep or long") {
  const std::string text = dsa::test::read_text(dsa::test::fixtures_dir() / "engine/tiny-fp8/config.json");
  const auto with_hidden_size = [&](const std::string& value) {
    std::string t = text;
    const auto at = t.find("\"hidden_size\": 128");
    REQUIRE(at != std::string::npos);
    t.replace(at, std::string("\"hidden_size\": 128").size(), "\"hidden_size\": " + value);
    const auto r = dsa::parse_config(t, "config.json");
    REQUIRE_FALSE(r.ok());
    return r.error().message;
  };
  // Quoted with a recursive dump, 100000 levels overflowed the stack.
  CHECK(with_hidden_size(std::string(100000, '[') + std::string(100000, ']')) ==
        "config.json: nested deeper than 64 levels");
  CHECK(with_hidden_size(std::string(10, '[') + std::string(10, ']')) ==
        "config.json: field 'hidden_size': expected an integer, found an array");
  CHECK(with_hidden_size(R"({"a": 1})") == "config.json: field 'hidden_size': expected an integer, found an object");
  CHECK(with_hidden_size("\"" + std::string(1000000, 'x') + "\"") ==
        "config.json: field 'hidden_size': expected an integer, found \"" + std::string(80, 'x') + "...\"");

  json j = fixture_config("tiny-fp8");
  j["model_type"] = "deepseek\nsecond line \x1b[31mred";
  CHECK(parse_error(j) ==
        "config.json: field 'model_type': unsupported value 'deepseek\\x0asecond line \\x1b[31mred' "
        "(supported: 'deepseek_v32')");
}

TEST_CASE("sizes beyond the engine's bounds are refused before anything is sized by them") {
  const json base = fixture_config("tiny-fp8");
  const auto with = [&](const char* field, json value) {
    json j = base;
    j[field] = std::move(value);
    return parse_error(j);
  };
  CHECK(with("num_hidden_layers", 1000000) ==
        "config.json: field 'num_hidden_layers': must be at most 4096, found 1000000");
  CHECK(with("vocab_size", INT64_MAX) ==
        "config.json: field 'vocab_size': must be at most 4194304, found 9223372036854775807");
  CHECK(with("hidden_size", 1e300) == "config.json: field 'hidden_size': too large, found 1e+300");
  // Above INT64_MAX a JSON integer is unsigned: it was read back as -1.
  CHECK(with("vocab_size", UINT64_MAX) == "config.json: field 'vocab_size': too large, found 18446744073709551615");
  CHECK(with("n_routed_experts", 1000000000).starts_with("config.json: field 'n_routed_experts': must be at most"));
  // Each count within its bound, their product not: 64 MoE layers of 4096 experts.
  json many = base;
  many["num_hidden_layers"] = 65;
  many["n_routed_experts"] = 4096;
  CHECK(parse_error(many) ==
        "config.json: field 'n_routed_experts': 4096 in each of 64 MoE layers are more than "
        "131072 routed experts in all");
  CHECK(with("quantization_config", {{"quant_method", "fp8"}, {"weight_block_size", {INT64_MAX, INT64_MAX}}})
            .starts_with("config.json: field 'quantization_config.weight_block_size': must be from 1 to"));

  // The largest config within every bound: its parameter count and bytes still fit in int64.
  ModelConfig big;
  big.vocab_size = 1 << 22;
  big.hidden_size = big.q_lora_rank = big.kv_lora_rank = big.moe_intermediate_size = 1 << 16;
  big.intermediate_size = 1 << 18;
  big.num_hidden_layers = 1 << 12;
  big.first_k_dense_replace = (1 << 12) - 2;
  big.n_routed_experts = big.n_group = 1 << 16;
  big.topk_group = big.num_experts_per_tok;
  big.n_shared_experts = 64;
  big.num_attention_heads = big.num_key_value_heads = big.index_n_heads = 1 << 12;
  big.qk_nope_head_dim = big.qk_rope_head_dim = big.v_head_dim = big.index_head_dim = 1 << 12;
  REQUIRE(dsa::validate_config(big, "big").ok());
  const dsa::ParamCounts n = dsa::count_params(big);
  CHECK(n.total > 0);
  CHECK(n.total < (int64_t(1) << 60));
}

TEST_CASE("config.json that cannot be read says why") {
  dsa::test::TempDir dir("dsa-config");
  CHECK(dsa::load_config(dir / "nowhere" / "config.json").error().message ==
        (dir / "nowhere").string() + ": directory does not exist");
  CHECK(dsa::load_config(dir / "config.json").error().message ==
        (dir / "config.json").string() + ": cannot open config file: No such file or directory");
  std::filesystem::create_directory(dir / "config.json");
  CHECK(dsa::load_config(dir / "config.json").error().message ==
        (dir / "config.json").string() + ": is a directory, not a regular file");
  std::filesystem::remove(dir / "config.json");
  // A FIFO: opened for reading, it waits for a writer. Give the load a few seconds, then be that
  // writer so a failing test ends.
  REQUIRE(::mkfifo((dir / "config.json").c_str(), 0600) == 0);
  auto loaded = std::async(std::launch::async, [&] { return dsa::load_config(dir / "config.json"); });
  if (loaded.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    const int fd = ::open((dir / "config.json").c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
    FAIL("opening a FIFO blocked");
  }
  const auto r = loaded.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == (dir / "config.json").string() + ": is a FIFO, not a regular file");
}

TEST_CASE("bad relations between fields name the field") {
  const json base = fixture_config("tiny-fp8");
  const auto with = [&](const char* field, json value) {
    json j = base;
    j[field] = std::move(value);
    return parse_error(j);
  };
  CHECK(with("n_group", 3).starts_with("config.json: field 'n_group': must divide n_routed_experts"));
  CHECK(with("topk_group", 5).starts_with("config.json: field 'topk_group': exceeds n_group"));
  // 2 groups of 2 experts -> at most 4 candidates.
  CHECK(with("num_experts_per_tok", 5).starts_with("config.json: field 'num_experts_per_tok': exceeds"));
  CHECK(with("index_topk", 0).starts_with("config.json: field 'index_topk': must be positive"));
  CHECK(with("hidden_size", -1).starts_with("config.json: field 'hidden_size': must be positive"));
  CHECK(with("num_key_value_heads", 3).starts_with("config.json: field 'num_key_value_heads': must divide"));
  CHECK(with("first_k_dense_replace", 4).starts_with("config.json: field 'first_k_dense_replace': exceeds"));
  CHECK(with("qk_rope_head_dim", 31).starts_with("config.json: field 'qk_rope_head_dim': must be even"));
  CHECK(with("tie_word_embeddings", true).starts_with("config.json: field 'tie_word_embeddings':"));
}

TEST_CASE("optional fields: no quantization_config is BF16; no rope_scaling is plain RoPE") {
  json j = fixture_config("tiny-fp8");
  j.erase("quantization_config");
  j.erase("rope_scaling");
  j.erase("num_nextn_predict_layers");
  const auto c = dsa::parse_config(j.dump(), "config.json");
  REQUIRE(c.ok());
  CHECK_FALSE(c->fp8);
  CHECK(c->num_nextn_predict_layers == 0);
  CHECK(c->softmax_scale() == doctest::Approx(1.0 / 8.0));  // qk_head_dim 64, no mscale
  CHECK_FALSE(json::parse(dsa::config_to_json(*c)).contains("quantization_config"));
}

TEST_CASE("softmax scale of V3.2 with YaRN mscale (model-spec 4.2)") {
  CHECK(ModelConfig{}.softmax_scale() == doctest::Approx(0.13523378).epsilon(1e-7));
}

TEST_CASE("bench presets are performance.md's") {
  const auto s = dsa::preset_config("bench-s");
  REQUIRE(s.ok());
  CHECK(s->hidden_size == 1024);
  CHECK(s->num_hidden_layers == 8);
  CHECK(s->first_k_dense_replace == 1);
  CHECK(s->num_attention_heads == 16);
  CHECK(s->q_lora_rank == 384);
  CHECK(s->kv_lora_rank == 256);
  CHECK(s->qk_nope_head_dim == 64);
  CHECK(s->qk_rope_head_dim == 32);
  CHECK(s->v_head_dim == 64);
  CHECK(s->n_routed_experts == 16);
  CHECK(s->num_experts_per_tok == 2);
  CHECK(s->n_group == 4);
  CHECK(s->topk_group == 2);
  CHECK(s->n_shared_experts == 1);
  CHECK(s->moe_intermediate_size == 512);
  CHECK(s->intermediate_size == 2816);
  CHECK(s->index_n_heads == 8);
  CHECK(s->index_head_dim == 64);
  CHECK(s->index_topk == 256);
  CHECK(s->vocab_size == 32000);
  CHECK(s->fp8);

  const auto m = dsa::preset_config("bench-m");
  REQUIRE(m.ok());
  CHECK(m->hidden_size == 7168);
  CHECK(m->num_attention_heads == 128);
  CHECK(m->q_lora_rank == 1536);
  CHECK(m->kv_lora_rank == 512);
  CHECK(m->index_n_heads == 64);
  CHECK(m->index_head_dim == 128);
  CHECK(m->index_topk == 2048);
  CHECK(m->num_hidden_layers == 4);
  CHECK(m->first_k_dense_replace == 1);
  CHECK(m->n_routed_experts == 32);
  CHECK(m->num_experts_per_tok == 8);

  CHECK_FALSE(dsa::preset_config("huge").ok());
}

TEST_CASE("parameter counts of the full V3.2 config match model-spec 1.3") {
  const ModelConfig full;
  const dsa::ParamCounts n = dsa::count_params(full);
  CHECK(double(n.total) / 1e9 == doctest::Approx(671.88).epsilon(0.00001));
  CHECK(double(n.active) / 1e9 == doctest::Approx(37.5).epsilon(0.005));

  // Per layer, from the inventory: attention 201.06 M of which the indexer is 13.96 M,
  // dense MLP 396.36 M, a MoE layer's MLP 11.320 B.
  int64_t attn = 0, indexer = 0, dense = 0, moe = 0;
  for (const dsa::TensorSpec& s : dsa::tensor_inventory(full)) {
    if (s.role == dsa::TensorRole::linear_scale) continue;
    if (s.layer == 0 && s.name.find(".self_attn.") != std::string::npos) attn += s.numel();
    if (s.layer == 0 && s.name.find(".indexer.") != std::string::npos) indexer += s.numel();
    if (s.layer == 0 && s.name.find(".mlp.") != std::string::npos) dense += s.numel();
    if (s.layer == 3 && s.name.find(".mlp.") != std::string::npos) moe += s.numel();
  }
  CHECK(double(attn) / 1e6 == doctest::Approx(201.06).epsilon(0.0001));
  CHECK(double(indexer) / 1e6 == doctest::Approx(13.96).epsilon(0.001));
  CHECK(double(dense) / 1e6 == doctest::Approx(396.36).epsilon(0.0001));
  CHECK(double(moe) / 1e9 == doctest::Approx(11.320).epsilon(0.0001));
}
