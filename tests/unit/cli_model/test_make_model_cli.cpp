// `dsagent make-model` and `dsagent inspect` as a user runs them.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "engine/loader/safetensors.hpp"
#include "engine/loader/safetensors_writer.hpp"
#include "engine/model/config.hpp"
#include "engine/model/make_model.hpp"
#include "tests/test_support.hpp"

using namespace dsa;

namespace {

test::CommandResult dsagent(const std::string& args) {
  return test::run_command("'" + test::dsagent_binary().string() + "' " + args + " 2>&1");
}

std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST_CASE("make-model then inspect: the printed parameter counts are the checkpoint's") {
  test::TempDir tmp("dsa-cli-model");
  const auto dir = tmp / "tiny";
  const auto made = dsagent("make-model " + q(dir) + " --preset tiny --shards 2 --seed 3");
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  CHECK(std::filesystem::exists(dir / "model-00002-of-00002.safetensors"));

  // Counted here from the checkpoint itself: every non-scale tensor; per token one embedding row
  // and only num_experts_per_tok of the routed experts.
  const ModelConfig c = *preset_config("tiny");
  const auto ckpt = Checkpoint::open(dir);
  REQUIRE(ckpt.ok());
  int64_t total = 0, unused = 0;
  for (const TensorInfo& t : ckpt->tensors()) {
    if (t.name.ends_with("_scale_inv")) continue;
    total += t.numel();
    if (t.name == "model.embed_tokens.weight") unused += t.numel() - c.hidden_size;
    const auto e = t.name.find(".mlp.experts.");
    if (e != std::string::npos && std::stoll(t.name.substr(e + 13)) >= c.num_experts_per_tok) unused += t.numel();
  }
  const int64_t active = total - unused;

  const auto text = dsagent("inspect " + q(dir));
  REQUIRE_MESSAGE(text.exit_code == 0, text.output);
  CHECK_MESSAGE(text.output.find("total " + std::to_string(total) + ", active per token " + std::to_string(active)) !=
                    std::string::npos,
                text.output);
  CHECK(text.output.find("1 dense, 2 MoE") != std::string::npos);

  const auto js = dsagent("inspect " + q(dir) + " --json");
  REQUIRE_MESSAGE(js.exit_code == 0, js.output);
  const auto j = nlohmann::json::parse(js.output);
  CHECK(j["params"]["total"] == total);
  CHECK(j["params"]["active"] == active);
  CHECK(j["n_shards"] == 2);
  CHECK(j["fp8_scales"]["not_power_of_two"] == 0);
  CHECK(j["problem"].is_null());
  uint64_t bytes = 0;
  for (const TensorInfo& t : ckpt->tensors()) bytes += t.nbytes;
  CHECK(j["bytes_total"] == bytes);
  // Per layer: bf16 latent 2*(128+32) = 320 B, FP8 record 128 + 4 + 64 = 196 B, indexer 64 + 4 = 68 B.
  CHECK(j["cache_bytes_per_token"]["kv_bf16_latent"] == 3 * 320);
  CHECK(j["cache_bytes_per_token"]["kv_fp8"] == 3 * 196);
  CHECK(j["cache_bytes_per_token"]["indexer"] == 3 * 68);
  CHECK(j["cache_bytes_at_128k"]["indexer"] == 3 * 68 * 131072);
}

TEST_CASE("make-model refuses a non-empty directory without --force") {
  test::TempDir tmp("dsa-cli-model");
  REQUIRE(dsagent("make-model " + q(tmp.path()) + " --preset tiny").exit_code == 0);
  const auto again = dsagent("make-model " + q(tmp.path()) + " --preset tiny --dtype bf16");
  CHECK(again.exit_code != 0);
  CHECK(again.output.find("not empty (use --force") != std::string::npos);
  const auto forced = dsagent("make-model " + q(tmp.path()) + " --preset tiny --dtype bf16 --force");
  REQUIRE_MESSAGE(forced.exit_code == 0, forced.output);
  const auto config = load_config(tmp / "config.json");
  REQUIRE(config.ok());
  CHECK_FALSE(config->fp8);
  CHECK(dsagent("make-model " + q(tmp / "x") + " --preset huge").exit_code != 0);
}

TEST_CASE("inspect reports an inventory problem as expected-vs-found and exits non-zero") {
  test::TempDir tmp("dsa-cli-model");
  REQUIRE(dsagent("make-model " + q(tmp.path()) + " --preset tiny --shards 2").exit_code == 0);
  auto j = nlohmann::json::parse(test::read_text(tmp / "config.json"));
  j["intermediate_size"] = 512;
  test::write_text(tmp / "config.json", j.dump());
  const auto r = dsagent("inspect " + q(tmp.path()));
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.output.find("model-00001-of-00002.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight': "
                              "expected F8_E4M3 [512, 128], found F8_E4M3 [256, 128]") != std::string::npos,
                r.output);

  j["kv_lora_rank"] = "big";
  test::write_text(tmp / "config.json", j.dump());
  const auto bad = dsagent("inspect " + q(tmp.path()));
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("field 'kv_lora_rank'") != std::string::npos);
}

TEST_CASE("plan: DeepSeek-V3.2 on 8 GPUs, with and without enough memory per GPU") {
  const auto h200 = dsagent("plan --gpus 8 --gpu-memory 140.4 --json");
  REQUIRE_MESSAGE(h200.exit_code == 0, h200.output);
  const auto j = nlohmann::json::parse(h200.output);
  CHECK(j["checkpoint_bytes"] == 674030368448ull);  // tests/golden/memory_plan_v32.py
  REQUIRE(j["ranks"].size() == 8);
  CHECK(j["ranks"][3]["weights"] == 86052925696ull);
  CHECK(j["fits"] == true);
  CHECK(j["max_sequences"].get<int64_t>() >= 6);
  CHECK(j["max_sequences"].get<int64_t>() <= 10);

  const auto h100 = dsagent("plan --gpus 8 --gpu-memory 79.65");
  CHECK(h100.exit_code == 1);
  // The weights as memory_plan_v32.py counts them; the total adds caches and the workspace estimate.
  CHECK(h100.output.find("dsagent plan: needs ") == 0);
  CHECK(h100.output.find(" GiB per GPU (rank 3: weights 80.14 GiB") != std::string::npos);

  const auto uneven = dsagent("plan --gpus 3");
  CHECK(uneven.exit_code == 1);
  CHECK(uneven.output.find("128 attention heads do not split over 3 ranks") != std::string::npos);
}

TEST_CASE("plan reads only config.json: a made model's plan counts its checkpoint bytes") {
  test::TempDir tmp("dsa-cli-plan");
  const auto dir = tmp / "tiny";
  REQUIRE(dsagent("make-model " + q(dir) + " --preset tiny --seed 1").exit_code == 0);
  const auto out = dsagent("plan " + q(dir) + " --gpus 1 --context 1000 --json");
  REQUIRE_MESSAGE(out.exit_code == 0, out.output);
  const auto j = nlohmann::json::parse(out.output);
  auto ckpt = Checkpoint::open(dir);
  REQUIRE(ckpt.ok());
  uint64_t bytes = 0;
  for (const TensorInfo& t : ckpt->tensors()) bytes += t.nbytes;
  CHECK(j["checkpoint_bytes"].get<uint64_t>() == bytes);
  CHECK(j["ranks"][0]["weights"].get<uint64_t>() == bytes);
  const auto missing = dsagent("plan " + q(tmp / "nowhere"));
  CHECK(missing.exit_code == 1);
}

namespace {

// A made tiny model, with config.json edited by `edit`.
std::filesystem::path tiny_with(const test::TempDir& tmp, const std::function<void(nlohmann::json&)>& edit) {
  const auto dir = tmp / "tiny";
  REQUIRE(dsagent("make-model " + q(dir) + " --preset tiny").exit_code == 0);
  auto j = nlohmann::json::parse(test::read_text(dir / "config.json"));
  edit(j);
  test::write_text(dir / "config.json", j.dump());
  return dir;
}

int64_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

}  // namespace

TEST_CASE("inspect and plan refuse absurd sizes in one line, before sizing anything by them") {
  test::TempDir tmp("dsa-cli-model");
  const auto layers = tiny_with(tmp, [](nlohmann::json& j) { j["num_hidden_layers"] = 1000000; });
  for (const std::string& cmd : {"inspect " + q(layers), "plan " + q(layers) + " --gpus 1"}) {
    CAPTURE(cmd);
    const auto r = dsagent(cmd);
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("field 'num_hidden_layers': must be at most 4096, found 1000000") != std::string::npos);
    CHECK(lines(r.output) == 1);
  }
  test::TempDir tmp2("dsa-cli-model");
  const auto experts = tiny_with(tmp2, [](nlohmann::json& j) {
    j["n_routed_experts"] = 1000000000;
    j["n_group"] = j["topk_group"] = 1;
  });
  const auto r = dsagent("inspect " + q(experts));
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("field 'n_routed_experts': must be at most 65536") != std::string::npos);
}

TEST_CASE("inspect and plan report what keeps generate from loading a model, as generate does") {
  test::TempDir tmp("dsa-cli-model");
  const auto dir = tiny_with(tmp, [](nlohmann::json& j) { j["index_head_dim"] = 256; });
  const std::string problem = "config.json: field 'index_head_dim': must be a power of two up to 128";
  for (const std::string& cmd : {"inspect " + q(dir), "plan " + q(dir) + " --gpus 1",
                                 "generate --model " + q(dir) + " --prompt hi --max-tokens 1"}) {
    CAPTURE(cmd);
    const auto r = dsagent(cmd);
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.output.find(problem) != std::string::npos, r.output);
  }
  const auto js = test::run_command(q(test::dsagent_binary()) + " inspect " + q(dir) + " --json 2>/dev/null");
  CHECK(js.exit_code == 1);
  CHECK(nlohmann::json::parse(js.output)["problem"].get<std::string>().find(problem) != std::string::npos);
}

TEST_CASE("inspect accepts the vector dtypes generate loads: an F32 final norm") {
  test::TempDir tmp("dsa-cli-model");
  const auto dir = tmp / "tiny";
  REQUIRE(dsagent("make-model " + q(dir) + " --preset tiny").exit_code == 0);
  // Rewrite the checkpoint with model.norm.weight widened from BF16 to F32.
  {
    const auto ckpt = Checkpoint::open(dir);
    REQUIRE(ckpt.ok());
    std::vector<TensorLayout> layout;
    for (const TensorInfo& t : ckpt->tensors())
      layout.push_back({t.name, t.name == "model.norm.weight" ? DType::F32 : t.dtype, t.shape});
    auto w = SafetensorsWriter::create(tmp / "widened.safetensors", layout);
    REQUIRE(w.ok());
    for (const TensorInfo& t : ckpt->tensors()) {
      if (t.name == "model.norm.weight") {
        const auto values = read_as_f32(t);
        REQUIRE(values.ok());
        REQUIRE(w->write(t.name, std::as_bytes(std::span(*values))).ok());
      } else {
        REQUIRE(w->write(t.name, std::span(t.data, t.nbytes)).ok());
      }
    }
    REQUIRE(w->finish().ok());
  }
  std::filesystem::rename(tmp / "widened.safetensors", dir / "model.safetensors");
  const auto inspect = dsagent("inspect " + q(dir));
  CHECK_MESSAGE(inspect.exit_code == 0, inspect.output);
  const auto generate = dsagent("generate --model " + q(dir) + " --prompt hi --max-tokens 1");
  CHECK_MESSAGE(generate.exit_code == 0, generate.output);
}

TEST_CASE("inspect reports FP8 scales no weight can be dequantised by as a problem") {
  test::TempDir tmp("dsa-cli-model");
  const auto dir = tmp / "tiny";
  REQUIRE(dsagent("make-model " + q(dir) + " --preset tiny").exit_code == 0);
  const std::string spoiled = "model.layers.0.self_attn.q_a_proj.weight_scale_inv";
  {
    const auto ckpt = Checkpoint::open(dir);
    REQUIRE(ckpt.ok());
    REQUIRE(ckpt->find(spoiled));
    std::vector<TensorLayout> layout;
    for (const TensorInfo& t : ckpt->tensors()) layout.push_back({t.name, t.dtype, t.shape});
    auto w = SafetensorsWriter::create(tmp / "spoiled.safetensors", layout);
    REQUIRE(w.ok());
    for (const TensorInfo& t : ckpt->tensors()) {
      std::vector<std::byte> bytes(t.data, t.data + t.nbytes);
      if (t.name == spoiled) {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::memcpy(bytes.data(), &nan, sizeof nan);
      }
      REQUIRE(w->write(t.name, std::span(bytes)).ok());
    }
    REQUIRE(w->finish().ok());
  }
  std::filesystem::rename(tmp / "spoiled.safetensors", dir / "model.safetensors");
  const auto inspect = dsagent("inspect " + q(dir));
  CHECK(inspect.exit_code == 1);
  CHECK_MESSAGE(
      inspect.output.find("dsagent inspect: 1 FP8 scale(s) are NaN, infinite, zero or negative (the first in " +
                          spoiled + ")") != std::string::npos,
      inspect.output);
}

TEST_CASE("no shared experts: inspect, plan and generate agree that the model runs") {
  test::TempDir tmp("dsa-cli-model");
  ModelConfig c = *preset_config("tiny");
  c.n_shared_experts = 0;
  REQUIRE(make_model(tmp / "tiny", c, {.seed = 2}).ok());
  for (const std::string& cmd : {"inspect " + q(tmp / "tiny"), "plan " + q(tmp / "tiny") + " --gpus 1",
                                 "generate --model " + q(tmp / "tiny") + " --prompt hi --max-tokens 2"}) {
    CAPTURE(cmd);
    const auto r = dsagent(cmd);
    CHECK_MESSAGE(r.exit_code == 0, r.output);
  }
}

TEST_CASE("make-model --force replaces each file whole: an old file's readers keep the old bytes") {
  test::TempDir tmp("dsa-cli-model");
  REQUIRE(dsagent("make-model " + q(tmp / "m") + " --preset tiny").exit_code == 0);
  // Second names for the old files: what a process that has them open or mapped reads.
  for (const char* file : {"config.json", "model.safetensors"})
    std::filesystem::create_hard_link(tmp / "m" / file, tmp / (std::string("old-") + file));
  const std::string old_config = test::read_text(tmp / "old-config.json");
  const std::string old_weights = test::read_text(tmp / "old-model.safetensors");
  const auto forced = dsagent("make-model " + q(tmp / "m") + " --preset tiny --dtype bf16 --force");
  REQUIRE_MESSAGE(forced.exit_code == 0, forced.output);
  CHECK(test::read_text(tmp / "old-config.json") == old_config);
  CHECK(test::read_text(tmp / "old-model.safetensors") == old_weights);
  CHECK(test::read_text(tmp / "m" / "config.json") != old_config);
  CHECK(dsagent("inspect " + q(tmp / "m")).exit_code == 0);
}

TEST_CASE("a missing model directory and a config string with control bytes: one line each") {
  test::TempDir tmp("dsa-cli-model");
  const auto missing = dsagent("inspect " + q(tmp / "nowhere"));
  CHECK(missing.exit_code == 1);
  CHECK(missing.output == "dsagent inspect: " + (tmp / "nowhere").string() + ": directory does not exist\n");
  const auto dir = tiny_with(tmp, [](nlohmann::json& j) { j["model_type"] = "deepseek\nsecond line \x1b[31mred"; });
  const auto r = dsagent("inspect " + q(dir));
  CHECK(r.exit_code == 1);
  CHECK(lines(r.output) == 1);
  CHECK(r.output.find("unsupported value 'deepseek\\x0asecond line \\x1b[31mred'") != std::string::npos);
}
