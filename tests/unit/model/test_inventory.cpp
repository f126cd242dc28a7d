// The tensor inventory against checkpoints written independently (the NumPy fixture script) and by
// the safetensors writer; the writer's layout read back by the reader.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "engine/loader/safetensors.hpp"
#include "engine/loader/safetensors_writer.hpp"
#include "engine/model/config.hpp"
#include "engine/model/inventory.hpp"
#include "engine/model/weights.hpp"
#include "tests/test_support.hpp"

using namespace dsa;

namespace {

ModelConfig tiny(bool fp8) {
  ModelConfig c = *preset_config("tiny");
  if (!fp8) {
    c.fp8 = false;
    c.scale_fmt.clear();
  }
  return c;
}

// Writes every tensor of `specs` (zero-filled) into one file.
void write_zero_checkpoint(const std::filesystem::path& path, const std::vector<TensorLayout>& specs) {
  auto w = SafetensorsWriter::create(path, specs);
  REQUIRE_MESSAGE(w.ok(), (w.ok() ? "" : w.error().message));
  for (const TensorLayout& t : specs) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= size_t(d);
    const std::vector<std::byte> zeros(n);
    REQUIRE(w->write(t.name, zeros).ok());
  }
  REQUIRE(w->finish().ok());
}

std::vector<TensorLayout> layouts(const std::vector<TensorSpec>& inv) {
  std::vector<TensorLayout> out;
  for (const TensorSpec& s : inv) out.push_back({s.name, s.dtype, s.shape});
  return out;
}

}  // namespace

TEST_CASE("the tiny inventory is exactly the fixture checkpoints' tensors") {
  for (const bool fp8 : {true, false}) {
    INFO("fp8 " << fp8);
    const auto ckpt = Checkpoint::open(test::fixtures_dir() / "engine" / (fp8 ? "tiny-fp8" : "tiny-bf16"));
    REQUIRE_MESSAGE(ckpt.ok(), (ckpt.ok() ? "" : ckpt.error().message));
    const std::vector<TensorSpec> inv = tensor_inventory(tiny(fp8));
    std::map<std::string, std::string> expected, found;
    for (const TensorSpec& s : inv) expected[s.name] = std::string(dtype_name(s.dtype)) + " " + shape_string(s.shape);
    for (const TensorInfo& t : ckpt->tensors()) found[t.name] = std::string(dtype_name(t.dtype)) + " " + t.shape_str();
    CHECK(expected == found);
    const auto check = check_inventory(*ckpt, tiny(fp8));
    REQUIRE(check.ok());
    CHECK(check->empty());
  }
}

TEST_CASE("check_inventory: the first mismatch as expected-vs-found, with the shard name") {
  test::TempDir dir("dsa-inv");
  const ModelConfig c = tiny(true);
  std::vector<TensorLayout> specs = layouts(tensor_inventory(c));
  const std::string target = "model.layers.1.self_attn.kv_b_proj.weight";
  for (TensorLayout& t : specs)
    if (t.name == target) t.dtype = DType::BF16;
  write_zero_checkpoint(dir / "model.safetensors", specs);
  const auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  const auto r = check_inventory(*ckpt, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "model.safetensors: tensor 'model.layers.1.self_attn.kv_b_proj.weight': expected F8_E4M3 [256, 128], "
        "found BF16 [256, 128]");
}

TEST_CASE("check_inventory: a missing tensor; extra tensors warn; MTP layers are ignored") {
  test::TempDir dir("dsa-inv");
  const ModelConfig c = tiny(true);
  std::vector<TensorLayout> specs = layouts(tensor_inventory(c));
  specs.push_back({"model.layers.3.eh_proj.weight", DType::BF16, {128, 256}});  // MTP layer (index 3)
  specs.push_back({"model.extra.weight", DType::F32, {4}});
  write_zero_checkpoint(dir / "model.safetensors", specs);
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  const auto warnings = check_inventory(*ckpt, c);
  REQUIRE(warnings.ok());
  REQUIRE(warnings->size() == 1);
  CHECK((*warnings)[0].find("'model.extra.weight'") != std::string::npos);

  std::vector<TensorLayout> fewer;
  for (const TensorLayout& t : specs)
    if (t.name != "model.layers.2.mlp.experts.5.up_proj.weight_scale_inv") fewer.push_back(t);
  write_zero_checkpoint(dir / "model.safetensors", fewer);
  ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  const auto missing = check_inventory(*ckpt, c);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message ==
        "model.safetensors: tensor 'model.layers.2.mlp.experts.5.up_proj.weight_scale_inv': missing (expected F32 [1, 1])");
}

TEST_CASE("writer: header sorted and aligned, data read back exactly") {
  test::TempDir dir("dsa-writer");
  const std::vector<TensorLayout> specs = {{"b.scale", DType::F32, {3}},
                                           {"a.codes", DType::F8_E4M3, {5, 3}},
                                           {"c.weight", DType::BF16, {2, 3}},
                                           {"a.bias", DType::F32, {1}}};
  auto w = SafetensorsWriter::create(dir / "x.safetensors", specs, {{"format", "pt"}});
  REQUIRE(w.ok());
  std::map<std::string, std::vector<std::byte>> data;
  int k = 1;
  for (const TensorLayout& t : specs) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= size_t(d);
    auto& bytes = data[t.name];
    for (size_t i = 0; i < n; ++i) bytes.push_back(std::byte(k * 31 + i));
    ++k;
  }
  // Written in pieces and out of order.
  const auto& codes = data["a.codes"];
  REQUIRE(w->write("a.codes", std::span(codes).subspan(6), 6).ok());
  REQUIRE(w->write("a.codes", std::span(codes).first(6), 0).ok());
  CHECK_FALSE(w->write("a.codes", std::span(codes).first(6), 12).ok());  // past the end
  CHECK_FALSE(w->write("nope", std::span(codes).first(1)).ok());
  for (const char* name : {"c.weight", "b.scale"}) REQUIRE(w->write(name, data[name]).ok());
  const auto incomplete = w->finish();
  REQUIRE_FALSE(incomplete.ok());
  CHECK(incomplete.error().message.find("'a.bias' was not written in full") != std::string::npos);

  w = SafetensorsWriter::create(dir / "x.safetensors", specs, {{"format", "pt"}});
  REQUIRE(w.ok());
  for (const TensorLayout& t : specs) REQUIRE(w->write(t.name, data[t.name]).ok());
  REQUIRE(w->finish().ok());

  const auto ckpt = Checkpoint::open(dir / "x.safetensors");
  REQUIRE_MESSAGE(ckpt.ok(), (ckpt.ok() ? "" : ckpt.error().message));
  CHECK(ckpt->metadata().at("format") == "pt");
  size_t data_start = SIZE_MAX, prev_end = 0;
  std::vector<std::string> order;
  std::vector<TensorInfo> by_offset = ckpt->tensors();
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
  for (const TensorInfo& t : by_offset) {
    data_start = std::min(data_start, t.offset);
    if (prev_end) CHECK(t.offset == prev_end);  // no holes
    prev_end = t.offset + t.nbytes;
    CHECK(t.offset % dtype_size(t.dtype) == 0);
    order.push_back(t.name);
    REQUIRE(t.nbytes == data[t.name].size());
    CHECK(std::memcmp(t.data, data[t.name].data(), t.nbytes) == 0);
  }
  CHECK(data_start % 8 == 0);
  CHECK(order == std::vector<std::string>{"a.bias", "b.scale", "c.weight", "a.codes"});
  CHECK(prev_end == std::filesystem::file_size(dir / "x.safetensors"));
}

TEST_CASE("check_inventory accepts what the loader binds: a vector in BF16 or F32") {
  test::TempDir dir("dsa-inv");
  const ModelConfig c = tiny(true);
  const auto with_dtype = [&](const std::string& name, DType dtype) {
    std::vector<TensorLayout> specs = layouts(tensor_inventory(c));
    for (TensorLayout& t : specs)
      if (t.name == name) t.dtype = dtype;
    write_zero_checkpoint(dir / "model.safetensors", specs);
    auto ckpt = Checkpoint::open(dir.path());
    REQUIRE(ckpt.ok());
    return ckpt;
  };
  for (const auto& [name, dtype] :
       {std::pair{std::string("model.norm.weight"), DType::F32},
        std::pair{std::string("model.layers.1.self_attn.indexer.k_norm.weight"), DType::BF16},
        std::pair{std::string("model.layers.2.mlp.gate.e_score_correction_bias"), DType::BF16}}) {
    INFO(name);
    const auto ckpt = with_dtype(name, dtype);
    const auto checked = check_inventory(*ckpt, c);
    CHECK_MESSAGE(checked.ok(), (checked.ok() ? "" : checked.error().message));
    const auto bound = bind_weights(*ckpt, c);
    CHECK_MESSAGE(bound.ok(), (bound.ok() ? "" : bound.error().message));
  }
  // Neither takes F16.
  const auto ckpt = with_dtype("model.norm.weight", DType::F16);
  const auto checked = check_inventory(*ckpt, c);
  REQUIRE_FALSE(checked.ok());
  CHECK(checked.error().message ==
        "model.safetensors: tensor 'model.norm.weight': expected BF16 or F32 [128], found F16 [128]");
  CHECK_FALSE(bind_weights(*ckpt, c).ok());
}

TEST_CASE("writer: a file appears whole under its name, replacing the old one; a failed write leaves nothing") {
  test::TempDir dir("dsa-writer");
  const std::vector<TensorLayout> specs = {{"a", DType::F32, {2}}};
  const std::vector<std::byte> bytes(8, std::byte{7});
  const auto path = dir / "x.safetensors";
  test::write_text(path, "old");
  // A second name for the old file: what a process that has it open or mapped still reads.
  std::filesystem::create_hard_link(path, dir / "old-link");
  {
    auto w = SafetensorsWriter::create(path, specs);
    REQUIRE(w.ok());
    REQUIRE(w->write("a", bytes).ok());
    CHECK(test::read_text(path) == "old");  // nothing under the name until the file is complete
    REQUIRE(w->finish().ok());
  }
  CHECK(test::read_text(dir / "old-link") == "old");
  const auto ckpt = Checkpoint::open(path);
  REQUIRE(ckpt.ok());
  CHECK(ckpt->find("a") != nullptr);

  const auto names = [&] {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  {
    auto unfinished = SafetensorsWriter::create(dir / "y.safetensors", specs);
    REQUIRE(unfinished.ok());
    auto incomplete = SafetensorsWriter::create(dir / "z.safetensors", specs);
    REQUIRE(incomplete.ok());
    CHECK_FALSE(incomplete->finish().ok());
  }
  CHECK(names() == std::vector<std::string>{"old-link", "x.safetensors"});

  REQUIRE(write_text_file(dir / "old-link", "new").ok());
  CHECK(test::read_text(dir / "old-link") == "new");
  CHECK(test::read_text(path) != "new");  // the other name keeps the file it had
  CHECK(names() == std::vector<std::string>{"old-link", "x.safetensors"});
}
