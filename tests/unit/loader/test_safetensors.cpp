// Safetensors reader: dtypes, single-file and sharded checkpoints, and one clear error line (naming
// the file and the tensor) for every kind of corrupt input. Files are built byte by byte here.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <future>

#include "engine/loader/safetensors.hpp"
#include "tests/unit/loader/st_builder.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

std::string open_error(const std::filesystem::path& p) {
  auto r = Checkpoint::open(p);
  REQUIRE_FALSE(r.ok());
  const std::string& m = r.error().message;
  CHECK(m.find('\n') == std::string::npos);
  return m;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

StTensor f32_tensor(const std::string& name, std::vector<int64_t> shape, float first = 0) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = first + float(i);
  return {name, "F32", shape, raw_bytes(v)};
}

std::vector<uint8_t> data_bytes(const TensorInfo& t) {
  const auto* b = reinterpret_cast<const uint8_t*>(t.data);
  return {b, b + t.nbytes};
}

std::vector<uint8_t> as_u8(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("dtype names and sizes are the safetensors ones") {
  const std::vector<std::pair<std::string, size_t>> table = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},      {"BOOL", 1}};
  for (const auto& [name, size] : table) {
    const auto t = parse_dtype(name);
    REQUIRE_MESSAGE(t.has_value(), name);
    CHECK(std::string(dtype_name(*t)) == name);
    CHECK(dtype_size(*t) == size);
  }
  CHECK_FALSE(parse_dtype("f32").has_value());
  CHECK_FALSE(parse_dtype("F8_E4M3FN").has_value());
  CHECK_FALSE(parse_dtype("C64").has_value());
}

TEST_CASE("every dtype round-trips through a file: dtype, shape, offset and bytes") {
  TempDir dir("loader");
  std::vector<StTensor> tensors;
  const std::vector<std::pair<std::string, size_t>> kinds = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},      {"BOOL", 1}};
  for (size_t k = 0; k < kinds.size(); ++k) {
    std::string bytes(2 * 3 * kinds[k].second, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 37 + k * 11 + 1) & 0xff);
    if (kinds[k].first == "BOOL") bytes = std::string("\x01\x00\x01\x01\x00\x00", 6);
    tensors.push_back({"t." + kinds[k].first, kinds[k].first, {2, 3}, bytes});
  }
  tensors.push_back({"empty", "F32", {0, 7}, ""});
  tensors.push_back({"scalar", "I32", {}, raw_bytes(std::vector<int32_t>{-5})});
  const auto path = write_file(dir / "one.safetensors", st_file(tensors, {{"format", "pt"}, {"note", "x y"}}));

  auto ckpt = Checkpoint::open(path);
  REQUIRE_MESSAGE(ckpt.ok(), error_of(ckpt));
  CHECK(ckpt->tensors().size() == tensors.size());
  CHECK(ckpt->metadata().at("format") == "pt");
  CHECK(ckpt->metadata().at("note") == "x y");
  CHECK(ckpt->shard_paths().size() == 1);
  size_t expected_offset = 8 + st_header(tensors, {{"format", "pt"}, {"note", "x y"}}).size();
  for (const auto& want : tensors) {
    const TensorInfo* t = ckpt->find(want.name);
    REQUIRE_MESSAGE(t != nullptr, want.name);
    CHECK(std::string(dtype_name(t->dtype)) == want.dtype);
    CHECK(t->shape == want.shape);
    CHECK(t->nbytes == want.bytes.size());
    CHECK(t->offset == expected_offset);
    CHECK(data_bytes(*t) == as_u8(want.bytes));
    expected_offset += want.bytes.size();
  }
  CHECK(ckpt->find("scalar")->numel() == 1);
  CHECK(ckpt->find("empty")->numel() == 0);
  CHECK(ckpt->find("t.F32")->shape_str() == "[2, 3]");
  CHECK(ckpt->find("missing") == nullptr);
}

TEST_CASE("read_as_f32 decodes each float format exactly") {
  TempDir dir("loader");
  // Bit patterns with their values worked out by hand from the format definitions.
  const std::vector<float> f32 = {1.5f, -0.0f, 3.0e-41f, 65504.0f};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x0001, 0x7BFF};      // 1, -2, 2^-24, 65504
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x0001, 0x4B80};     // 1, -3, 2^-133, 2^24
  const std::vector<uint8_t> e4m3 = {0x38, 0xB8, 0x01, 0x7E, 0x7F, 0x08};  // 1, -1, 2^-9, 448, NaN, 2^-6
  const std::vector<uint8_t> e5m2 = {0x3C, 0x7B, 0x01, 0xC2};              // 1, 57344, 2^-16, -3
  const auto path = write_file(dir / "f.safetensors",
                               st_file({{"f32", "F32", {4}, raw_bytes(f32)},
                                        {"f16", "F16", {4}, raw_bytes(f16)},
                                        {"bf16", "BF16", {2, 2}, raw_bytes(bf16)},
                                        {"e4m3", "F8_E4M3", {6}, raw_bytes(e4m3)},
                                        {"e5m2", "F8_E5M2", {4}, raw_bytes(e5m2)},
                                        {"i32", "I32", {1}, raw_bytes(std::vector<int32_t>{7})}}));
  auto ckpt = Checkpoint::open(path);
  REQUIRE_MESSAGE(ckpt.ok(), error_of(ckpt));
  auto values = [&](const char* name) {
    auto r = read_as_f32(*ckpt->find(name));
    REQUIRE_MESSAGE(r.ok(), error_of(r));
    return *r;
  };
  CHECK(values("f32") == f32);
  CHECK(values("f16") == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f});
  CHECK(values("bf16") == std::vector<float>{1.0f, -3.0f, std::ldexp(1.0f, -133), 16777216.0f});
  const auto v8 = values("e4m3");
  CHECK(v8[0] == 1.0f);
  CHECK(v8[1] == -1.0f);
  CHECK(v8[2] == std::ldexp(1.0f, -9));
  CHECK(v8[3] == 448.0f);
  CHECK(std::isnan(v8[4]));
  CHECK(v8[5] == std::ldexp(1.0f, -6));
  CHECK(values("e5m2") == std::vector<float>{1.0f, 57344.0f, std::ldexp(1.0f, -16), -3.0f});
  auto bad = read_as_f32(*ckpt->find("i32"));
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.error().message, "'i32'"));
  CHECK(contains(bad.error().message, "I32"));
}

TEST_CASE("a directory with model.safetensors opens like the file") {
  TempDir dir("loader");
  write_file(dir / "model.safetensors", st_file({f32_tensor("a", {3}, 1), f32_tensor("b", {2, 2}, 10)}));
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE_MESSAGE(ckpt.ok(), error_of(ckpt));
  REQUIRE(ckpt->find("b") != nullptr);
  CHECK(*read_as_f32(*ckpt->find("b")) == std::vector<float>{10, 11, 12, 13});
  CHECK(ckpt->shard_paths()[0] == dir.path() / "model.safetensors");
}

namespace {

// Three shards and their index: a,b in shard 1; c in shard 2; d,e in shard 3.
void write_sharded(const TempDir& dir, const std::string& index_extra = "") {
  write_file(dir / "model-00001-of-00003.safetensors",
             st_file({f32_tensor("a", {2}, 1), f32_tensor("b", {3}, 5)}, {{"format", "pt"}}));
  write_file(dir / "model-00002-of-00003.safetensors", st_file({f32_tensor("c", {4}, 20)}));
  write_file(dir / "model-00003-of-00003.safetensors",
             st_file({f32_tensor("d", {1}, 30), {"e", "BF16", {2}, raw_bytes(std::vector<uint16_t>{0x4000, 0x4040})}}));
  write_text(dir / "model.safetensors.index.json",
             R"({"metadata": {"total_size": 44}, "weight_map": {
                  "a": "model-00001-of-00003.safetensors", "b": "model-00001-of-00003.safetensors",
                  "c": "model-00002-of-00003.safetensors", "d": "model-00003-of-00003.safetensors",
                  "e": "model-00003-of-00003.safetensors")" +
                 index_extra + "}}");
}

}  // namespace

TEST_CASE("a sharded checkpoint is one name index over all shards") {
  TempDir dir("loader");
  write_sharded(dir);
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE_MESSAGE(ckpt.ok(), error_of(ckpt));
  CHECK(ckpt->tensors().size() == 5);
  REQUIRE(ckpt->shard_paths().size() == 3);
  CHECK(ckpt->metadata().at("format") == "pt");
  const std::vector<std::pair<std::string, std::string>> where = {
      {"a", "model-00001-of-00003.safetensors"}, {"b", "model-00001-of-00003.safetensors"},
      {"c", "model-00002-of-00003.safetensors"}, {"d", "model-00003-of-00003.safetensors"},
      {"e", "model-00003-of-00003.safetensors"}};
  for (const auto& [name, shard] : where) {
    const TensorInfo* t = ckpt->find(name);
    REQUIRE_MESSAGE(t != nullptr, name);
    CHECK(ckpt->shard_paths()[size_t(t->shard)].filename() == shard);
  }
  CHECK(*read_as_f32(*ckpt->find("b")) == std::vector<float>{5, 6, 7});
  CHECK(*read_as_f32(*ckpt->find("c")) == std::vector<float>{20, 21, 22, 23});
  CHECK(*read_as_f32(*ckpt->find("e")) == std::vector<float>{2.0f, 3.0f});
}

// ---- bad input: every case gives one line naming the file (and the tensor) -------------------

TEST_CASE("sharded checkpoint errors name the shard and the tensor") {
  SUBCASE("missing shard") {
    TempDir dir("loader");
    write_sharded(dir);
    std::filesystem::remove(dir / "model-00002-of-00003.safetensors");
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model.safetensors.index.json"));
    CHECK(contains(m, "model-00002-of-00003.safetensors"));
    CHECK(contains(m, "'c'"));
    CHECK(contains(m, "missing"));
  }
  SUBCASE("index names a tensor the shard lacks") {
    TempDir dir("loader");
    write_sharded(dir, R"(, "f": "model-00002-of-00003.safetensors")");
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model-00002-of-00003.safetensors"));
    CHECK(contains(m, "'f'"));
  }
  SUBCASE("tensor in two shards") {
    TempDir dir("loader");
    write_sharded(dir);
    write_file(dir / "model-00002-of-00003.safetensors", st_file({f32_tensor("c", {4}, 20), f32_tensor("a", {2})}));
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model-00002-of-00003.safetensors"));
    CHECK(contains(m, "model-00001-of-00003.safetensors"));
    CHECK(contains(m, "'a'"));
  }
  SUBCASE("tensor in a shard the index maps elsewhere") {
    TempDir dir("loader");
    write_sharded(dir);
    std::filesystem::remove(dir / "model-00001-of-00003.safetensors");
    write_file(dir / "model-00001-of-00003.safetensors", st_file({f32_tensor("a", {2})}));
    write_file(dir / "model-00002-of-00003.safetensors", st_file({f32_tensor("c", {4}), f32_tensor("b", {3})}));
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model-00002-of-00003.safetensors"));
    CHECK(contains(m, "'b'"));
    CHECK(contains(m, "model-00001-of-00003.safetensors"));
  }
  SUBCASE("tensor the index does not list") {
    TempDir dir("loader");
    write_sharded(dir);
    write_file(dir / "model-00002-of-00003.safetensors", st_file({f32_tensor("c", {4}), f32_tensor("extra", {1})}));
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model-00002-of-00003.safetensors"));
    CHECK(contains(m, "'extra'"));
  }
  SUBCASE("malformed index") {
    TempDir dir("loader");
    write_sharded(dir);
    write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "model-00001-of-00003.safetensors",)");
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model.safetensors.index.json"));
    CHECK(contains(m, "JSON"));
  }
  SUBCASE("index shard outside the directory") {
    TempDir dir("loader");
    write_sharded(dir, R"(, "f": "../elsewhere.safetensors")");
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model.safetensors.index.json"));
    CHECK(contains(m, "'f'"));
  }
  SUBCASE("a corrupt shard names that shard") {
    TempDir dir("loader");
    write_sharded(dir);
    std::string bytes = read_text(dir / "model-00003-of-00003.safetensors");
    write_file(dir / "model-00003-of-00003.safetensors", bytes.substr(0, bytes.size() - 2));
    const auto m = open_error(dir.path());
    CHECK(contains(m, "model-00003-of-00003.safetensors"));
    CHECK(contains(m, "'e'"));
  }
}

TEST_CASE("corrupt single files give one line naming the file and the tensor") {
  TempDir dir("loader");
  const auto path = dir / "bad.safetensors";
  const std::vector<StTensor> good = {f32_tensor("model.embed.weight", {2, 3}), f32_tensor("model.norm.weight", {4})};
  const std::string good_header = st_header(good);
  const std::string good_data = good[0].bytes + good[1].bytes;
  REQUIRE(Checkpoint::open(write_file(path, st_file_raw(good_header, good_data))).ok());

  auto check_error = [&](const std::string& file_bytes, std::vector<std::string> parts) {
    write_file(path, file_bytes);
    const auto m = open_error(path);
    CHECK_MESSAGE(contains(m, path.string() + ": "), m);
    for (const auto& p : parts) CHECK_MESSAGE(contains(m, p), m);
  };
  auto with_entry = [&](const std::string& entry) {
    return "{\"model.embed.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," + entry + "}";
  };

  SUBCASE("truncated data") {
    check_error(st_file_raw(good_header, good_data.substr(0, 30)), {"'model.norm.weight'", "[24, 40]", "(30 bytes)"});
  }
  SUBCASE("truncated inside the header") { check_error(st_file_raw(good_header, "").substr(0, 20), {"header length"}); }
  SUBCASE("shorter than the length prefix") { check_error(std::string("\x05\x00\x00", 3), {"too short"}); }
  SUBCASE("header length larger than the file") {
    check_error(st_file_raw(good_header, good_data, good_header.size() + good_data.size() + 1), {"header length"});
  }
  SUBCASE("absurd header length") { check_error(st_file_raw(good_header, good_data, 1ull << 40), {"header length"}); }
  SUBCASE("offsets past the end") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[24,48]})"),
                            good_data),
                {"'model.norm.weight'", "outside the data section (40 bytes)"});
  }
  SUBCASE("offsets in the wrong order") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[0],"data_offsets":[24,8]})"),
                            good_data),
                {"'model.norm.weight'", "[24, 8]"});
  }
  SUBCASE("overlapping tensors") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[20,36]})"),
                            good_data),
                {"'model.norm.weight'", "'model.embed.weight'", "overlap"});
  }
  SUBCASE("size does not match the shape") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[5],"data_offsets":[24,40]})"),
                            good_data),
                {"'model.norm.weight'", "[5]", "20 bytes", "hold 16"});
  }
  SUBCASE("size overflows 64 bits") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F64","shape":[4294967296,4294967296],)"
                                       R"("data_offsets":[24,40]})"),
                            good_data),
                {"'model.norm.weight'", "needs too many bytes"});
  }
  SUBCASE("unknown dtype") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F17","shape":[4],"data_offsets":[24,40]})"),
                            good_data),
                {"'model.norm.weight'", "unknown dtype 'F17'"});
  }
  SUBCASE("duplicated tensor within a file") {
    check_error(st_file_raw(with_entry(R"("model.embed.weight":{"dtype":"F32","shape":[4],"data_offsets":[24,40]})"),
                            good_data),
                {"'model.embed.weight'", "twice"});
  }
  SUBCASE("repeated key inside an entry") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","dtype":"F16","shape":[4],)"
                                       R"("data_offsets":[24,40]})"),
                            good_data),
                {"key 'dtype' appears twice"});
  }
  SUBCASE("malformed JSON") {
    std::string h = good_header;
    h.back() = ',';  // the outer object never closes
    check_error(st_file_raw(h, good_data), {"not valid JSON"});
  }
  SUBCASE("header that is not an object") { check_error(st_file_raw("[1,2]", ""), {"not a JSON object"}); }
  SUBCASE("negative shape") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[-4],"data_offsets":[24,40]})"),
                            good_data),
                {"'model.norm.weight'", "[-4]"});
  }
  SUBCASE("fractional shape") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[4.5],"data_offsets":[24,40]})"),
                            good_data),
                {"'model.norm.weight'", "shape"});
  }
  SUBCASE("missing data_offsets") {
    check_error(st_file_raw(with_entry(R"("model.norm.weight":{"dtype":"F32","shape":[4]})"), good_data),
                {"'model.norm.weight'", "data_offsets"});
  }
  SUBCASE("metadata value that is not a string") {
    check_error(st_file_raw(with_entry(R"("__metadata__":{"format":1})"), good_data), {"__metadata__", "'format'"});
  }
  SUBCASE("control characters in a name stay on one line") {
    check_error(st_file_raw(with_entry(R"("bad\nname":{"dtype":"F32","shape":[5],"data_offsets":[24,40]})"),
                            good_data),
                {"'bad\\x0aname'"});
  }
}

TEST_CASE("paths that are not checkpoints") {
  TempDir dir("loader");
  CHECK(contains(open_error(dir / "nope.safetensors"), "nope.safetensors: no such file"));
  CHECK(contains(open_error(dir.path()), "model.safetensors.index.json"));
  write_file(dir / "empty.safetensors", "");
  CHECK(contains(open_error(dir / "empty.safetensors"), "empty.safetensors: file is 0 bytes"));
}

TEST_CASE("a header value nested 100000 deep is one line, not a stack overflow") {
  TempDir dir("loader");
  const auto path = dir / "deep.safetensors";
  const std::string deep(100000, '['), close(100000, ']');
  // Past the nesting limit: refused while parsing.
  write_file(path, st_file_raw(R"({"a":{"dtype":"F32","shape":[)" + deep + close + R"(],"data_offsets":[0,0]}})", ""));
  CHECK(contains(open_error(path), "deep.safetensors: header is nested deeper than 64 levels"));
  // Within it: the bad shape is described, not dumped.
  const std::string nested = std::string(20, '[') + std::string(20, ']');
  write_file(path, st_file_raw(R"({"a":{"dtype":"F32","shape":[)" + nested + R"(],"data_offsets":[0,0]}})", ""));
  CHECK(contains(open_error(path), "tensor 'a': shape an array has a dimension that is not a non-negative integer"));
}

TEST_CASE("a checkpoint file that is not a regular file is named for what it is, without blocking") {
  TempDir dir("loader");
  SUBCASE("a FIFO in place of model.safetensors") {
    REQUIRE(::mkfifo((dir / "model.safetensors").c_str(), 0600) == 0);
    // Opened for reading without O_NONBLOCK, a FIFO waits for a writer: give the open a few
    // seconds, then be that writer so a failing test ends.
    auto opened = std::async(std::launch::async, [&] { return Checkpoint::open(dir.path()); });
    if (opened.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      const int fd = ::open((dir / "model.safetensors").c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
      FAIL("opening a FIFO blocked");
    }
    const auto r = opened.get();
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error().message, "model.safetensors: is a FIFO, not a regular file"));
  }
  SUBCASE("a shard that is a directory, or a symbolic link to nothing") {
    write_sharded(dir);
    std::filesystem::remove(dir / "model-00002-of-00003.safetensors");
    std::filesystem::create_directory(dir / "model-00002-of-00003.safetensors");
    CHECK(contains(open_error(dir.path()),
                   "shard 'model-00002-of-00003.safetensors' (holding tensor 'c') is a directory, not a regular file"));
    std::filesystem::remove(dir / "model-00002-of-00003.safetensors");
    std::filesystem::create_symlink(dir / "gone.safetensors", dir / "model-00002-of-00003.safetensors");
    CHECK(
        contains(open_error(dir.path()),
                 "shard 'model-00002-of-00003.safetensors' (holding tensor 'c') is a symbolic link to a missing file"));
  }
  SUBCASE("model.safetensors a symbolic link to nothing") {
    std::filesystem::create_symlink(dir / "gone.safetensors", dir / "model.safetensors");
    CHECK(contains(open_error(dir.path()), "model.safetensors: is a symbolic link to a missing file"));
  }
}

TEST_CASE("names from the shard index are quoted on one line") {
  TempDir dir("loader");
  write_sharded(dir, R"(, "f\nsecond line": "../x\u001b[31m.safetensors")");
  const auto m = open_error(dir.path());
  CHECK(contains(m, "tensor 'f\\x0asecond line': shard '../x\\x1b[31m.safetensors' is not a file name"));
}
