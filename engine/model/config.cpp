// config.json parsing, validation, serialisation and the make-model presets.
#include "engine/model/config.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

#include "engine/loader/file_checks.hpp"
#include "engine/loader/json_text.hpp"

namespace dsa {

using nlohmann::json;

namespace {

// Reads fields of one JSON object; every error names the source file and the field.
class FieldReader {
 public:
  FieldReader(const json& obj, std::string source, std::string prefix = "")
      : obj_(obj), source_(std::move(source)), prefix_(std::move(prefix)) {}

  Error error(const std::string& field, const std::string& what) const {
    return make_error(source_ + ": field '" + prefix_ + field + "': " + what);
  }
  bool has(const std::string& field) const { return obj_.contains(field) && !obj_[field].is_null(); }

  Result<void> get_int(const std::string& field, int64_t& out, bool required) const {
    if (!has(field)) return required ? Result<void>(error(field, "missing")) : Result<void>();
    const json& v = obj_[field];
    // nlohmann holds a number above INT64_MAX as unsigned: get<int64_t>() would wrap it negative.
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) {
      return error(field, "too large, found " + describe_json(v));
    }
    if (v.is_number_integer()) {
      out = v.get<int64_t>();
      return {};
    }
    // 40.0 written for an integer field is accepted; 40.5 is not.
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
      if (std::fabs(v.get<double>()) >= 9e15) return error(field, "too large, found " + describe_json(v));
      out = static_cast<int64_t>(v.get<double>());
      return {};
    }
    return error(field, "expected an integer, found " + describe_json(v));
  }
  Result<void> get_double(const std::string& field, double& out, bool required) const {
    if (!has(field)) return required ? Result<void>(error(field, "missing")) : Result<void>();
    const json& v = obj_[field];
    if (!v.is_number()) return error(field, "expected a number, found " + describe_json(v));
    out = v.get<double>();
    return {};
  }
  Result<void> get_bool(const std::string& field, bool& out, bool required) const {
    if (!has(field)) return required ? Result<void>(error(field, "missing")) : Result<void>();
    const json& v = obj_[field];
    if (!v.is_boolean()) return error(field, "expected true or false, found " + describe_json(v));
    out = v.get<bool>();
    return {};
  }
  Result<void> get_string(const std::string& field, std::string& out, bool required) const {
    if (!has(field)) return required ? Result<void>(error(field, "missing")) : Result<void>();
    const json& v = obj_[field];
    if (!v.is_string()) return error(field, "expected a string, found " + describe_json(v));
    out = v.get<std::string>();
    return {};
  }
  // A string field that, when present, must be one of `allowed`.
  Result<void> get_choice(const std::string& field, std::string& out, std::initializer_list<const char*> allowed,
                          bool required) const {
    if (auto r = get_string(field, out, required); !r) return r;
    if (!has(field)) return {};
    std::string list;
    for (const char* a : allowed) {
      if (out == a) return {};
      list += (list.empty() ? "'" : ", '") + std::string(a) + "'";
    }
    return error(field, "unsupported value '" + printable(out, 80) + "' (supported: " + list + ")");
  }

 private:
  const json& obj_;
  std::string source_;
  std::string prefix_;
};

#define DSA_FIELD(call) \
  if (auto r_ = (call); !r_) return r_.error()

Result<void> parse_rope_scaling(const json& j, ModelConfig& c, const std::string& src) {
  const FieldReader top(j, src);
  if (!top.has("rope_scaling")) {
    // No scaling: factor 1 makes YaRN the identity (no frequency change, mscale 1).
    c.rope_scaling = RopeScaling{};
    c.rope_scaling.type = "none";
    c.rope_scaling.factor = 1.0;
    c.rope_scaling.original_max_position_embeddings = c.max_position_embeddings;
    return {};
  }
  if (!j["rope_scaling"].is_object())
    return top.error("rope_scaling", "expected an object, found " + describe_json(j["rope_scaling"]));
  const json& rs = j["rope_scaling"];
  const FieldReader f(rs, src, "rope_scaling.");
  RopeScaling& r = c.rope_scaling;
  std::string type;
  if (f.has("type")) {
    DSA_FIELD(f.get_choice("type", type, {"yarn"}, true));
  } else {
    DSA_FIELD(f.get_choice("rope_type", type, {"yarn"}, true));
  }
  r.type = type;
  DSA_FIELD(f.get_double("factor", r.factor, true));
  DSA_FIELD(f.get_int("original_max_position_embeddings", r.original_max_position_embeddings, true));
  DSA_FIELD(f.get_double("beta_fast", r.beta_fast, false));
  DSA_FIELD(f.get_double("beta_slow", r.beta_slow, false));
  DSA_FIELD(f.get_double("mscale", r.mscale, false));
  DSA_FIELD(f.get_double("mscale_all_dim", r.mscale_all_dim, false));
  if (!(r.factor >= 1.0)) return f.error("factor", "must be >= 1, found " + describe_json(rs["factor"]));
  if (r.original_max_position_embeddings <= 0) return f.error("original_max_position_embeddings", "must be positive");
  if (!(r.beta_fast > r.beta_slow) || r.beta_slow <= 0)
    return f.error("beta_fast", "must be greater than beta_slow, and both positive");
  return {};
}

Result<void> parse_quantization(const json& j, ModelConfig& c, const std::string& src) {
  const FieldReader top(j, src);
  if (!top.has("quantization_config")) {
    c.fp8 = false;
    c.scale_fmt.clear();
    return {};
  }
  const json& q = j["quantization_config"];
  if (!q.is_object()) return top.error("quantization_config", "expected an object, found " + describe_json(q));
  const FieldReader f(q, src, "quantization_config.");
  std::string s;
  DSA_FIELD(f.get_choice("quant_method", s, {"fp8"}, true));
  DSA_FIELD(f.get_choice("fmt", s, {"e4m3"}, false));
  DSA_FIELD(f.get_choice("activation_scheme", s, {"dynamic"}, false));
  c.fp8 = true;
  c.scale_fmt.clear();  // absent: scales are arbitrary floats
  DSA_FIELD(f.get_choice("scale_fmt", c.scale_fmt, {"ue8m0"}, false));
  if (!f.has("weight_block_size")) return f.error("weight_block_size", "missing");
  const json& b = q["weight_block_size"];
  if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer())
    return f.error("weight_block_size", "expected [rows, cols] integers, found " + describe_json(b));
  if (b[0] != b[1] || b[0].get<int64_t>() <= 0)
    return f.error("weight_block_size", "only square positive blocks are supported, found " + describe_json(b));
  c.weight_block_size = b[0].get<int64_t>();
  return {};
}

}  // namespace

double ModelConfig::softmax_scale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling.factor > 1.0) {
    const double mscale = 0.1 * rope_scaling.mscale_all_dim * std::log(rope_scaling.factor) + 1.0;
    scale *= mscale * mscale;
  }
  return scale;
}

Result<ModelConfig> parse_config(const std::string& json_text, const std::string& source_name) {
  const JsonDoc doc = parse_json_doc(json_text);
  if (!doc.ok()) return make_error(source_name + ": " + doc.error());
  const json& j = doc.value;
  if (!j.is_object()) return make_error(source_name + ": expected a JSON object");
  const FieldReader f(j, source_name);
  ModelConfig c;
  DSA_FIELD(f.get_choice("model_type", c.model_type, {"deepseek_v32"}, true));
  // Architecture: required, nothing is guessed.
  DSA_FIELD(f.get_int("vocab_size", c.vocab_size, true));
  DSA_FIELD(f.get_int("hidden_size", c.hidden_size, true));
  DSA_FIELD(f.get_int("num_hidden_layers", c.num_hidden_layers, true));
  DSA_FIELD(f.get_int("first_k_dense_replace", c.first_k_dense_replace, true));
  DSA_FIELD(f.get_int("intermediate_size", c.intermediate_size, true));
  DSA_FIELD(f.get_int("moe_intermediate_size", c.moe_intermediate_size, true));
  DSA_FIELD(f.get_int("n_routed_experts", c.n_routed_experts, true));
  DSA_FIELD(f.get_int("n_shared_experts", c.n_shared_experts, true));
  DSA_FIELD(f.get_int("num_experts_per_tok", c.num_experts_per_tok, true));
  DSA_FIELD(f.get_int("n_group", c.n_group, true));
  DSA_FIELD(f.get_int("topk_group", c.topk_group, true));
  DSA_FIELD(f.get_double("routed_scaling_factor", c.routed_scaling_factor, true));
  DSA_FIELD(f.get_int("num_attention_heads", c.num_attention_heads, true));
  DSA_FIELD(f.get_int("q_lora_rank", c.q_lora_rank, true));
  DSA_FIELD(f.get_int("kv_lora_rank", c.kv_lora_rank, true));
  DSA_FIELD(f.get_int("qk_nope_head_dim", c.qk_nope_head_dim, true));
  DSA_FIELD(f.get_int("qk_rope_head_dim", c.qk_rope_head_dim, true));
  DSA_FIELD(f.get_int("v_head_dim", c.v_head_dim, true));
  DSA_FIELD(f.get_int("index_n_heads", c.index_n_heads, true));
  DSA_FIELD(f.get_int("index_head_dim", c.index_head_dim, true));
  DSA_FIELD(f.get_int("index_topk", c.index_topk, true));
  DSA_FIELD(f.get_double("rms_norm_eps", c.rms_norm_eps, true));
  DSA_FIELD(f.get_int("max_position_embeddings", c.max_position_embeddings, true));
  // Fields with the reference's defaults.
  c.num_nextn_predict_layers = 0;
  DSA_FIELD(f.get_int("num_nextn_predict_layers", c.num_nextn_predict_layers, false));
  DSA_FIELD(f.get_int("moe_layer_freq", c.moe_layer_freq, false));
  DSA_FIELD(f.get_choice("scoring_func", c.scoring_func, {"sigmoid"}, false));
  DSA_FIELD(f.get_choice("topk_method", c.topk_method, {"noaux_tc"}, false));
  DSA_FIELD(f.get_bool("norm_topk_prob", c.norm_topk_prob, false));
  c.num_key_value_heads = c.num_attention_heads;
  DSA_FIELD(f.get_int("num_key_value_heads", c.num_key_value_heads, false));
  DSA_FIELD(f.get_choice("hidden_act", c.hidden_act, {"silu"}, false));
  DSA_FIELD(f.get_double("rope_theta", c.rope_theta, false));
  DSA_FIELD(f.get_bool("attention_bias", c.attention_bias, false));
  if (c.attention_bias) return f.error("attention_bias", "true is not supported (MLA has no biases)");
  DSA_FIELD(f.get_bool("tie_word_embeddings", c.tie_word_embeddings, false));
  if (c.tie_word_embeddings) return f.error("tie_word_embeddings", "true is not supported (lm_head is its own tensor)");
  DSA_FIELD(f.get_int("bos_token_id", c.bos_token_id, false));
  DSA_FIELD(f.get_int("eos_token_id", c.eos_token_id, false));
  std::string torch_dtype;
  DSA_FIELD(f.get_choice("torch_dtype", torch_dtype, {"bfloat16"}, false));
  DSA_FIELD(parse_rope_scaling(j, c, source_name));
  DSA_FIELD(parse_quantization(j, c, source_name));
  DSA_FIELD(validate_config(c, source_name));
  return c;
}

Result<ModelConfig> load_config(const std::filesystem::path& config_json) {
  DSA_TRY(text, read_text_file(config_json, "config file"));
  return parse_config(text, config_json.string());
}

Result<void> validate_config(const ModelConfig& c, const std::string& src) {
  const auto bad = [&](const std::string& field, const std::string& what) {
    return make_error(src + ": field '" + field + "': " + what);
  };
  // Each field's range. The upper bounds are generous (V3.2's values are far inside them) but finite,
  // so that every size derived from a config (a tensor's elements, the parameter count, a
  // checkpoint's bytes) fits in int64 with room to spare.
  struct Bounds {
    const char* name;
    int64_t value, min, max;
  };
  constexpr int64_t k4K = int64_t(1) << 12, k64K = int64_t(1) << 16, k16M = int64_t(1) << 24;
  constexpr int64_t kMaxRoutedExperts = int64_t(1) << 17;  // over all MoE layers (V3.2: 58 x 256)
  const Bounds bounds[] = {
      {"vocab_size", c.vocab_size, 1, int64_t(1) << 22},
      {"hidden_size", c.hidden_size, 1, k64K},
      {"num_hidden_layers", c.num_hidden_layers, 1, k4K},
      {"num_nextn_predict_layers", c.num_nextn_predict_layers, 0, k4K},
      {"first_k_dense_replace", c.first_k_dense_replace, 0, k4K},
      {"moe_layer_freq", c.moe_layer_freq, 1, k4K},
      {"intermediate_size", c.intermediate_size, 1, int64_t(1) << 18},
      {"moe_intermediate_size", c.moe_intermediate_size, 1, k64K},
      {"n_routed_experts", c.n_routed_experts, 0, k64K},
      {"n_shared_experts", c.n_shared_experts, 0, 64},
      {"num_experts_per_tok", c.num_experts_per_tok, 1, k64K},
      {"n_group", c.n_group, 1, k64K},
      {"topk_group", c.topk_group, 1, k64K},
      {"num_attention_heads", c.num_attention_heads, 1, k4K},
      {"num_key_value_heads", c.num_key_value_heads, 1, k4K},
      {"q_lora_rank", c.q_lora_rank, 1, k64K},
      {"kv_lora_rank", c.kv_lora_rank, 1, k64K},
      {"qk_nope_head_dim", c.qk_nope_head_dim, 1, k4K},
      {"qk_rope_head_dim", c.qk_rope_head_dim, 1, k4K},
      {"v_head_dim", c.v_head_dim, 1, k4K},
      {"index_n_heads", c.index_n_heads, 1, k4K},
      {"index_head_dim", c.index_head_dim, 1, k4K},
      {"index_topk", c.index_topk, 1, k16M},
      {"max_position_embeddings", c.max_position_embeddings, 1, k16M},
      {"bos_token_id", c.bos_token_id, 0, INT64_MAX},  // below vocab_size, checked after
      {"eos_token_id", c.eos_token_id, 0, INT64_MAX},
  };
  for (const Bounds& f : bounds) {
    if (f.value < f.min) {
      return bad(f.name, std::string(f.min > 0 ? "must be positive" : "must not be negative") + ", found " +
                             std::to_string(f.value));
    }
    if (f.value > f.max)
      return bad(f.name, "must be at most " + std::to_string(f.max) + ", found " + std::to_string(f.value));
  }
  if (c.first_k_dense_replace > c.num_hidden_layers)
    return bad("first_k_dense_replace", "exceeds num_hidden_layers (" + std::to_string(c.num_hidden_layers) + ")");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return bad("num_key_value_heads", "must divide num_attention_heads (" + std::to_string(c.num_attention_heads) + ")");
  if (c.qk_rope_head_dim % 2 != 0) return bad("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  if (c.index_head_dim % 2 != 0 || c.index_head_dim < c.qk_rope_head_dim)
    return bad("index_head_dim", "must be even and at least qk_rope_head_dim (" + std::to_string(c.qk_rope_head_dim) + ")");
  const bool has_moe = c.first_k_dense_replace < c.num_hidden_layers;
  if (has_moe) {
    if (c.n_routed_experts <= 0) return bad("n_routed_experts", "must be positive when the model has MoE layers");
    if (c.n_routed_experts % c.n_group != 0)
      return bad("n_group", "must divide n_routed_experts (" + std::to_string(c.n_routed_experts) + ")");
    if (c.topk_group > c.n_group)
      return bad("topk_group", "exceeds n_group (" + std::to_string(c.n_group) + ")");
    // Every routed expert is its own tensors: this bounds the tensor inventory.
    const int64_t n_moe_layers =
        (c.num_hidden_layers - c.first_k_dense_replace + c.moe_layer_freq - 1) / c.moe_layer_freq;
    if (n_moe_layers * c.n_routed_experts > kMaxRoutedExperts) {
      return bad("n_routed_experts", std::to_string(c.n_routed_experts) + " in each of " +
                                         std::to_string(n_moe_layers) + " MoE layers are more than " +
                                         std::to_string(kMaxRoutedExperts) + " routed experts in all");
    }
    const int64_t candidates = c.topk_group * (c.n_routed_experts / c.n_group);
    if (c.num_experts_per_tok > candidates)
      return bad("num_experts_per_tok", "exceeds the experts in the top groups (topk_group * experts per group = " +
                                            std::to_string(candidates) + ")");
  }
  const std::pair<const char*, double> positive_reals[] = {{"routed_scaling_factor", c.routed_scaling_factor},
                                                           {"rms_norm_eps", c.rms_norm_eps},
                                                           {"rope_theta", c.rope_theta}};
  for (const auto& [name, v] : positive_reals)
    if (!(v > 0) || !std::isfinite(v)) return bad(name, "must be a finite positive number");
  if (c.bos_token_id >= c.vocab_size) return bad("bos_token_id", "is not below vocab_size");
  if (c.eos_token_id >= c.vocab_size) return bad("eos_token_id", "is not below vocab_size");
  if (c.fp8 && (c.weight_block_size <= 0 || c.weight_block_size > k64K))
    return bad("quantization_config.weight_block_size", "must be from 1 to " + std::to_string(k64K));
  return {};
}

std::string config_to_json(const ModelConfig& c) {
  // nlohmann's ordered_json keeps the field order of the real config.json.
  nlohmann::ordered_json j;
  j["architectures"] = {"DeepseekV32ForCausalLM"};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["intermediate_size"] = c.intermediate_size;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["scoring_func"] = c.scoring_func;
  j["topk_method"] = c.topk_method;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["q_lora_rank"] = c.q_lora_rank;
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["index_n_heads"] = c.index_n_heads;
  j["index_head_dim"] = c.index_head_dim;
  j["index_topk"] = c.index_topk;
  j["hidden_act"] = c.hidden_act;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type != "none") {
    const RopeScaling& r = c.rope_scaling;
    j["rope_scaling"] = {{"type", r.type},
                         {"factor", r.factor},
                         {"original_max_position_embeddings", r.original_max_position_embeddings},
                         {"beta_fast", r.beta_fast},
                         {"beta_slow", r.beta_slow},
                         {"mscale", r.mscale},
                         {"mscale_all_dim", r.mscale_all_dim}};
  }
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["torch_dtype"] = "bfloat16";
  if (c.fp8) {
    nlohmann::ordered_json q;
    q["activation_scheme"] = "dynamic";
    q["fmt"] = "e4m3";
    q["quant_method"] = "fp8";
    if (!c.scale_fmt.empty()) q["scale_fmt"] = c.scale_fmt;
    q["weight_block_size"] = {c.weight_block_size, c.weight_block_size};
    j["quantization_config"] = q;
  }
  return j.dump(2) + "\n";
}

Result<ModelConfig> preset_config(const std::string& name) {
  ModelConfig c;  // the full V3.2 values; each preset narrows them
  c.num_nextn_predict_layers = 0;
  if (name == "tiny") {
    c.vocab_size = 2048;
    c.hidden_size = 128;
    c.num_hidden_layers = 3;
    c.first_k_dense_replace = 1;
    c.intermediate_size = 256;
    c.moe_intermediate_size = 128;
    c.n_routed_experts = 8;
    c.num_experts_per_tok = 2;
    c.n_group = 4;
    c.topk_group = 2;
    c.num_attention_heads = c.num_key_value_heads = 4;
    c.q_lora_rank = 128;
    c.kv_lora_rank = 128;
    c.qk_nope_head_dim = 32;
    c.qk_rope_head_dim = 32;
    c.v_head_dim = 32;
    c.index_n_heads = 4;
    c.index_head_dim = 64;
    c.index_topk = 16;
  } else if (name == "bench-s") {
    c.vocab_size = 32000;
    c.hidden_size = 1024;
    c.num_hidden_layers = 8;
    c.first_k_dense_replace = 1;
    c.intermediate_size = 2816;
    c.moe_intermediate_size = 512;
    c.n_routed_experts = 16;
    c.num_experts_per_tok = 2;
    c.n_group = 4;
    c.topk_group = 2;
    c.num_attention_heads = c.num_key_value_heads = 16;
    c.q_lora_rank = 384;
    c.kv_lora_rank = 256;
    c.qk_nope_head_dim = 64;
    c.qk_rope_head_dim = 32;
    c.v_head_dim = 64;
    c.index_n_heads = 8;
    c.index_head_dim = 64;
    c.index_topk = 256;
  } else if (name == "bench-m") {
    // The real widths; only depth and expert count shrink.
    c.num_hidden_layers = 4;
    c.first_k_dense_replace = 1;
    c.n_routed_experts = 32;
    c.num_experts_per_tok = 8;
    c.n_group = 8;
    c.topk_group = 4;
  } else {
    return make_error("unknown preset '" + name + "' (presets: tiny, bench-s, bench-m)");
  }
  if (auto r = validate_config(c, "preset " + name); !r) return r.error();
  return c;
}

}  // namespace dsa
