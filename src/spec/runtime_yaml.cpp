// memtax runtime profile (YAML) -> RuntimeSpec.
#include <fmt/format.h>

#include <algorithm>

#include "core/number.hpp"
#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {

const char* to_string(AttentionKernel k) { return k == AttentionKernel::Eager ? "eager" : "fused"; }
const char* to_string(KvLayout k) { return k == KvLayout::Concat ? "concat" : k == KvLayout::InPlace ? "in-place" : "paged"; }
const char* to_string(MaskKind k) { return k == MaskKind::None ? "none" : k == MaskKind::Additive ? "additive" : "bool-when-needed"; }
const char* to_string(GqaKind k) { return k == GqaKind::Repeat ? "repeat" : k == GqaKind::Native ? "native" : "native-unless-masked"; }

const ContextOverhead& RuntimeSpec::overhead_for(const std::string& gpu) const {
    auto it = context_overhead.find(gpu);
    if (it == context_overhead.end()) it = context_overhead.find("default");
    return it->second;  // the loader requires a "default" entry
}

namespace {

const std::vector<std::string> kRuntimeKeys = {"name",
                                               "description",
                                               "family",
                                               "attention",
                                               "softmax_dtype",
                                               "logits_dtype",
                                               "mask",
                                               "gqa",
                                               "kv_cache",
                                               "keeps_alive",
                                               "allocator_round_bytes",
                                               "context_overhead",
                                               "vllm",
                                               "host",
                                               "kernels",
                                               "training",
                                               "train_host",
                                               "sources"};

}  // namespace

std::string EngineArgs::first_given() const {
    if (gpu_memory_utilization_ppm) return "runtime_settings.gpu_memory_utilization";
    if (max_num_seqs) return "runtime_settings.max_num_seqs";
    if (max_num_batched_tokens) return "runtime_settings.max_num_batched_tokens";
    if (block_size) return "runtime_settings.block_size";
    if (max_model_len) return "runtime_settings.max_model_len";
    if (kv_cache_memory_bytes) return "runtime_settings.kv_cache_memory_bytes";
    if (enforce_eager) return "runtime_settings.enforce_eager";
    if (attention_backend) return "runtime_settings.attention_backend";
    return "";
}

std::optional<u64> utilization_ppm(const std::string& text) {
    const auto ppm = parse_ppm(text);  // core/number.hpp
    if (!ppm || *ppm == 0 || *ppm > 1000000) return std::nullopt;
    return ppm;
}

RuntimeSpec load_runtime_yaml(const std::string& text, const std::string& file) {
    YAML::Node root = parse_yaml(text, file);
    YamlMap map(root, file, "");
    map.finish(kRuntimeKeys);
    RuntimeSpec r;
    r.file = file;
    r.name = map.required_string("name");
    r.description = map.required_string("description");
    // Any name: runtimes/ knows the families (RuntimeRegistry) and refuses an unknown one here.
    r.family = map.required_string("family");
    r.family_pos = map.pos("family");
    r.attention = map.required_choice("attention", {"eager", "fused"}) == "eager" ? AttentionKernel::Eager : AttentionKernel::Fused;
    auto dtype_field = [&](const std::string& key, const std::string& fallback) {
        std::string s = map.optional_string(key).value_or(fallback);
        DType d;
        if (s == "model") return std::optional<DType>{};
        if (!parse_dtype(s, d) || !d.whole_bytes())
            map.fail(key, fmt::format("\"{}\" is not an activation dtype; valid: model, fp32, bf16, fp16", s));
        return std::optional<DType>{d};
    };
    r.softmax_dtype = dtype_field("softmax_dtype", "fp32").value_or(DType{"fp32", 32, 0, 0});
    r.logits_dtype = dtype_field("logits_dtype", "model");
    std::string mask = map.required_choice("mask", {"none", "additive", "bool-when-needed"});
    r.mask = mask == "none" ? MaskKind::None : mask == "additive" ? MaskKind::Additive : MaskKind::BoolWhenNeeded;
    std::string gqa = map.required_choice("gqa", {"repeat", "native", "native-unless-masked"});
    r.gqa = gqa == "repeat" ? GqaKind::Repeat : gqa == "native" ? GqaKind::Native : GqaKind::NativeUnlessMasked;
    if (r.attention == AttentionKernel::Eager && r.gqa != GqaKind::Repeat)
        map.fail("gqa", "eager attention multiplies per query head: use repeat");

    YamlMap kv = map.required_map("kv_cache");
    kv.finish({"layout", "sliding_window_keeps"});
    std::string layout = kv.required_choice("layout", {"concat", "in-place", "paged"});
    r.kv_layout = layout == "concat" ? KvLayout::Concat : layout == "in-place" ? KvLayout::InPlace : KvLayout::Paged;
    std::string keeps = kv.optional_string("sliding_window_keeps").value_or("window");
    if (keeps == "window")
        r.sliding_window_drop = 0;
    else if (keeps == "window-minus-one")
        r.sliding_window_drop = 1;
    else
        kv.fail("sliding_window_keeps", fmt::format("\"{}\"; valid: window, window-minus-one", keeps));

    YAML::Node ka = map.node("keeps_alive");
    if (ka.IsDefined() && !ka.IsNull()) {
        if (!ka.IsSequence()) map.fail("keeps_alive", "expected a list of names");
        const std::vector<std::string> names = {"layer_input", "normed_input", "query_states", "attn_weights", "mlp_input", "model_locals"};
        bool* flags[] = {&r.keeps.layer_input,  &r.keeps.normed_input, &r.keeps.query_states,
                         &r.keeps.attn_weights, &r.keeps.mlp_input,    &r.keeps.model_locals};
        for (size_t i = 0; i < ka.size(); ++i) {
            std::string s = ka[i].IsScalar() ? ka[i].Scalar() : "";
            auto it = std::find(names.begin(), names.end(), s);
            if (it == names.end())
                throw InputError(map.pos_of(ka[i]), "keeps_alive",
                                 fmt::format("unknown entry \"{}\"{}; valid: {}", s, did_you_mean(s, names), fmt::join(names, ", ")));
            *flags[it - names.begin()] = true;
        }
    }

    r.allocator_round_bytes = map.required_u64("allocator_round_bytes");
    if (r.allocator_round_bytes == 0) map.fail("allocator_round_bytes", "must be positive (1 = no rounding)");

    YamlMap co = map.required_map("context_overhead");
    for (const auto& gpu : co.keys()) {
        YamlMap entry = co.required_map(gpu);
        entry.finish({"bytes", "source"});
        r.context_overhead[gpu] = ContextOverhead{entry.required_u64("bytes"), entry.required_string("source")};
    }
    if (!r.context_overhead.count("default")) map.fail("context_overhead", "needs a \"default\" entry (used for GPUs not listed)");

    if (auto h = map.optional_map("host")) {
        h->finish({"per_op_s", "per_step_s", "source"});
        RuntimeSpec::HostCost c;
        c.per_op_s = h->required_rate("per_op_s");
        c.per_step_s = h->required_rate("per_step_s");
        if (c.per_op_s > 1e-3) h->fail("per_op_s", fmt::format("{} s per op is implausible; valid: up to 1e-3", c.per_op_s));
        if (c.per_step_s > 1.0) h->fail("per_step_s", fmt::format("{} s per step is implausible; valid: up to 1", c.per_step_s));
        c.source = h->required_string("source");
        r.host = c;
    }

    if (auto h = map.optional_map("train_host")) {
        h->finish(
            {"forward_per_step_s", "forward_per_op_s", "backward_per_op_s", "optimizer_per_step_s", "optimizer_per_launch_s", "source"});
        RuntimeSpec::TrainHostCost c;
        auto per = [&](const char* key, double most) {
            const double v = h->required_rate(key);
            if (v > most) h->fail(key, fmt::format("{} s is implausible; valid: up to {}", v, most));
            return v;
        };
        if (h->has("forward_per_step_s")) c.forward_per_step_s = per("forward_per_step_s", 1.0);
        c.forward_per_op_s = per("forward_per_op_s", 1e-3);
        c.backward_per_op_s = per("backward_per_op_s", 1e-3);
        c.optimizer_per_step_s = per("optimizer_per_step_s", 1.0);
        c.optimizer_per_launch_s = per("optimizer_per_launch_s", 1e-3);
        c.source = h->required_string("source");
        r.train_host = c;
    }

    if (auto k = map.optional_map("kernels")) {
        k->finish({"strided", "strided_copy", "cat", "reduce", "softmax", "gemv_unaligned", "masked_attention", "foreach", "source"});
        RuntimeSpec::EagerKernels e;
        auto ratio = [&](const char* key) {
            const double v = k->required_rate(key);
            if (v > 10) k->fail(key, fmt::format("{} is implausible as a ratio to the stream bandwidth; valid: above 0, up to 10", v));
            return v;
        };
        e.strided = ratio("strided");
        e.strided_copy = ratio("strided_copy");
        e.cat = ratio("cat");
        e.reduce = ratio("reduce");
        e.softmax = ratio("softmax");
        e.gemv_unaligned = ratio("gemv_unaligned");
        if (k->has("masked_attention")) {
            e.masked_attention = k->required_rate("masked_attention");
            if (e.masked_attention > 1)
                k->fail("masked_attention",
                        fmt::format("{} is not a fraction of the fused attention rate; valid: above 0, up to 1", e.masked_attention));
        }
        if (k->has("foreach")) e.foreach = ratio("foreach");
        e.source = k->required_string("source");
        r.kernels = e;
    }

    if (auto t = map.optional_map("training")) {
        t->finish({"dropout", "fused_layernorm", "selective_recompute", "sequence_parallel", "main_grads", "optimizer"});
        if (auto o = t->optional_string("optimizer")) {
            if (*o != "foreach" && *o != "fused") t->fail("optimizer", fmt::format("\"{}\"; valid: foreach, fused", *o));
            r.training.fused_optimizer = *o == "fused";
        }
        if (auto g = t->optional_string("main_grads")) {
            if (*g != "fp32" && *g != "params") t->fail("main_grads", fmt::format("\"{}\"; valid: params, fp32", *g));
            r.training.fp32_main_grads = *g == "fp32";
        }
        r.training.sequence_parallel = t->optional_bool("sequence_parallel").value_or(false);
        r.training.dropout = t->optional_bool("dropout").value_or(false);
        r.training.fused_layernorm = t->optional_bool("fused_layernorm").value_or(false);
        r.training.selective_recompute = t->optional_bool("selective_recompute").value_or(false);
        r.training_pos = map.pos("training");
    }

    if (r.family == "vllm") {  // vLLM's engine arguments: its own section
        if (r.kv_layout != KvLayout::Paged) kv.fail("layout", "vllm uses a paged KV cache: layout: paged");
        YamlMap v = map.required_map("vllm");
        v.finish({"block_size", "gpu_memory_utilization", "max_num_batched_tokens", "max_num_seqs", "cudagraph_max_capture_size"});
        VllmParams p;
        p.block_size = v.required_u64("block_size");
        if (p.block_size == 0) v.fail("block_size", "must be positive (vLLM uses 16 by default)");
        std::string util = v.required_string("gpu_memory_utilization");
        auto ppm = utilization_ppm(util);
        if (!ppm) v.fail("gpu_memory_utilization", fmt::format("\"{}\" must be a decimal in (0, 1] with at most 6 digits", util));
        p.gpu_memory_utilization_ppm = *ppm;
        p.max_num_batched_tokens = v.required_u64("max_num_batched_tokens");
        p.max_num_seqs = v.required_u64("max_num_seqs");
        if (p.max_num_batched_tokens == 0) v.fail("max_num_batched_tokens", "must be positive");
        if (p.max_num_seqs == 0) v.fail("max_num_seqs", "must be positive");
        p.cudagraph_max_capture_size = v.required_u64("cudagraph_max_capture_size");
        r.vllm = p;
    } else if (map.has("vllm")) {
        map.fail("vllm", "only for family: vllm");
    }

    YamlMap src = map.required_map("sources");
    for (const auto& k : src.keys()) r.sources[k] = src.required_string(k);
    for (const char* must : {"mask", "gqa", "kv_cache", "keeps_alive", "allocator_round_bytes"})
        if (map.has(must) && !r.sources.count(must))
            map.fail(must, fmt::format("has no citation: add sources.{} (the code or measurement behind it)", must));
    return r;
}

}  // namespace memtax
