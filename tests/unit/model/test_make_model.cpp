// make_model: a generated checkpoint opens, passes the inventory, has sane weights and is reproducible.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/loader/fp8_blocks.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"
#include "engine/model/inventory.hpp"
#include "engine/model/make_model.hpp"
#include "engine/tokenizer/tokenizer.hpp"
#include "tests/test_support.hpp"

using namespace dsa;

namespace {

struct Stats {
  double mean = 0, std = 0;
};
Stats stats(const std::vector<float>& v) {
  double s = 0, s2 = 0;
  for (float x : v) s += x, s2 += double(x) * x;
  const double m = s / double(v.size());
  return {m, std::sqrt(s2 / double(v.size()) - m * m)};
}

std::vector<float> dequant(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo* w = ckpt.find(name);
  const TensorInfo* s = ckpt.find(name + "_scale_inv");
  REQUIRE((w && s));
  REQUIRE(check_fp8_pair(*w, *s).ok());
  std::vector<float> out(size_t(w->numel()));
  dequant_fp8_rows(*w, *s, 0, w->shape[0], out.data());
  return out;
}

}  // namespace

TEST_CASE("make_model tiny, 3 shards: opens, passes the inventory, sane FP8 weights") {
  test::TempDir dir("dsa-make");
  const ModelConfig c = *preset_config("tiny");
  MakeModelOptions opt;
  opt.n_shards = 3;
  opt.seed = 11;
  const auto summary = make_model(dir.path(), c, opt);
  REQUIRE_MESSAGE(summary.ok(), (summary.ok() ? "" : summary.error().message));
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                        "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                        "model-00003-of-00003.safetensors"})
    CHECK_MESSAGE(std::filesystem::exists(dir / f), f);
  CHECK_FALSE(std::filesystem::exists(dir / "model.safetensors"));

  const auto config = load_config(dir / "config.json");
  REQUIRE(config.ok());
  CHECK(config_to_json(*config) == config_to_json(c));
  const auto ckpt = Checkpoint::open(dir.path());
  REQUIRE_MESSAGE(ckpt.ok(), (ckpt.ok() ? "" : ckpt.error().message));
  CHECK(ckpt->shard_paths().size() == 3);
  const auto check = check_inventory(*ckpt, c);
  REQUIRE_MESSAGE(check.ok(), (check.ok() ? "" : check.error().message));
  CHECK(check->empty());

  // Layer-contiguous: all tensors of a layer in one shard; every shard holds something.
  std::map<int64_t, std::set<int>> shards_of_layer;
  std::set<int> used;
  for (const TensorSpec& s : tensor_inventory(c)) {
    const TensorInfo* t = ckpt->find(s.name);
    shards_of_layer[s.layer].insert(t->shard);
    used.insert(t->shard);
  }
  for (const auto& [layer, shards] : shards_of_layer)
    if (layer >= 0) CHECK_MESSAGE(shards.size() == 1, "layer " << layer);
  CHECK(ckpt->find("model.embed_tokens.weight")->shard == 0);
  CHECK(ckpt->find("lm_head.weight")->shard == 2);
  CHECK(used.size() == 3);

  // Linears ~ N(0, 1/in) after FP8 quantisation; all scales are powers of two.
  for (const char* name : {"model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.mlp.down_proj.weight",
                           "model.layers.2.mlp.experts.3.gate_proj.weight", "model.layers.1.self_attn.kv_a_proj_with_mqa.weight"}) {
    INFO(name);
    const std::vector<float> w = dequant(*ckpt, name);
    const Stats st = stats(w);
    const double in = double(ckpt->find(name)->shape[1]);
    CHECK(std::fabs(st.mean) < 0.1 / std::sqrt(in));
    CHECK(st.std == doctest::Approx(1.0 / std::sqrt(in)).epsilon(0.1));
  }
  int64_t n_scales = 0;
  for (const TensorInfo& t : ckpt->tensors())
    if (t.name.ends_with("_scale_inv")) {
      CHECK(count_non_pow2_scales(t) == 0);
      n_scales += t.numel();
    }
  CHECK(n_scales > 0);
  const auto norm = read_as_f32(*ckpt->find("model.layers.1.input_layernorm.weight"));
  REQUIRE(norm.ok());
  CHECK(stats(*norm).mean == doctest::Approx(1.0).epsilon(0.05));
  const auto emb = read_as_f32(*ckpt->find("model.embed_tokens.weight"));
  REQUIRE(emb.ok());
  CHECK(stats(*emb).std == doctest::Approx(1.0).epsilon(0.05));

  // The tokenizer fits the embedding.
  const auto tok = Tokenizer::load(dir / "tokenizer.json");
  REQUIRE(tok.ok());
  CHECK(tok->n_ids() <= c.vocab_size);
}

TEST_CASE("make_model: same seed same bytes, another seed other bytes; bf16 has no scales") {
  test::TempDir a("dsa-make"), b("dsa-make"), d("dsa-make");
  const ModelConfig c = *preset_config("tiny");
  MakeModelOptions opt;
  opt.seed = 5;
  REQUIRE(make_model(a.path(), c, opt).ok());
  REQUIRE(make_model(b.path(), c, opt).ok());
  CHECK(test::read_text(a / "model.safetensors") == test::read_text(b / "model.safetensors"));
  CHECK(test::read_text(a / "tokenizer.json") == test::read_text(b / "tokenizer.json"));
  opt.seed = 6;
  CHECK_FALSE(make_model(b.path(), c, opt).ok());  // not empty
  opt.overwrite = true;
  REQUIRE(make_model(b.path(), c, opt).ok());
  CHECK(test::read_text(a / "model.safetensors") != test::read_text(b / "model.safetensors"));

  ModelConfig bf16 = c;
  bf16.fp8 = false;
  bf16.scale_fmt.clear();
  REQUIRE(make_model(d.path(), bf16, {}).ok());
  const auto config = load_config(d / "config.json");
  REQUIRE(config.ok());
  CHECK_FALSE(config->fp8);
  CHECK_FALSE(nlohmann::json::parse(test::read_text(d / "config.json")).contains("quantization_config"));
  const auto ckpt = Checkpoint::open(d.path());
  REQUIRE(ckpt.ok());
  CHECK(check_inventory(*ckpt, bf16).ok());
  for (const TensorInfo& t : ckpt->tensors()) CHECK(t.dtype != DType::F8_E4M3);
  const auto w = read_as_f32(*ckpt->find("model.layers.0.self_attn.o_proj.weight"));
  REQUIRE(w.ok());
  CHECK(stats(*w).std == doctest::Approx(1.0 / std::sqrt(128.0)).epsilon(0.1));
}

TEST_CASE("make_model: shard counts outside 1..layers+2 are refused") {
  test::TempDir dir("dsa-make");
  MakeModelOptions opt;
  opt.n_shards = 6;  // tiny: 3 layers + embedding + head = 5 groups
  const auto r = make_model(dir.path(), *preset_config("tiny"), opt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.starts_with("shards: 6 is not between 1 and 5"));
  opt.n_shards = 5;
  CHECK(make_model(dir.path(), *preset_config("tiny"), opt).ok());
}
