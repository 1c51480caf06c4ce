#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common.cuh"

namespace probe {

void cuda_check(cudaError_t e, const char* what, const char* file, int line) {
    if (e == cudaSuccess) return;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s:%d: %s failed: %s (%s)", file, line, what, cudaGetErrorString(e), cudaGetErrorName(e));
    throw ProbeError(buf);
}

void cublas_check(cublasStatus_t s, const char* what, const char* file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s:%d: %s failed: cuBLAS status %d (%s)", file, line, what, static_cast<int>(s),
                  cublasGetStatusString(s));
    throw ProbeError(buf);
}

std::size_t dt_size(DT d) {
    switch (d) {
        case DT::F32:
            return 4;
        case DT::BF16:
        case DT::F16:
            return 2;
        case DT::E4M3:
            return 1;
        case DT::I32:
            return 4;
    }
    return 0;
}
const char* dt_name(DT d) {
    switch (d) {
        case DT::F32:
            return "fp32";
        case DT::BF16:
            return "bf16";
        case DT::F16:
            return "fp16";
        case DT::E4M3:
            return "fp8_e4m3";
        case DT::I32:
            return "int32";
    }
    return "?";
}

// ---- JSON ----------------------------------------------------------------------------------
static std::string escape(const std::string& s) {
    std::string o = "\"";
    for (unsigned char ch : s) {
        if (ch == '"' || ch == '\\') {
            o += '\\';
            o += static_cast<char>(ch);
        } else if (ch < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", ch);
            o += b;
        } else
            o += static_cast<char>(ch);
    }
    return o + "\"";
}
Json Json::str(const std::string& s) {
    Json j;
    j.raw_ = escape(s);
    return j;
}
Json Json::num(double v) {
    Json j;
    if (!std::isfinite(v)) {
        j.raw_ = "null";
        return j;
    }
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", v);
    j.raw_ = b;
    return j;
}
Json Json::integer(std::uint64_t v) {
    Json j;
    j.raw_ = std::to_string(v);
    return j;
}
Json Json::boolean(bool b) {
    Json j;
    j.raw_ = b ? "true" : "false";
    return j;
}
Json Json::object() {
    Json j;
    j.kind_ = Kind::Object;
    return j;
}
Json Json::array() {
    Json j;
    j.kind_ = Kind::Array;
    return j;
}
Json& Json::set(const std::string& key, Json v) {
    for (auto& kv : items_)
        if (kv.first == key) {
            kv.second = std::move(v);
            return *this;
        }
    items_.emplace_back(key, std::move(v));
    return *this;
}
Json& Json::push(Json v) {
    items_.emplace_back(std::string(), std::move(v));
    return *this;
}
void Json::dump_to(std::string& out, int indent, int depth) const {
    if (kind_ == Kind::Raw) {
        out += raw_;
        return;
    }
    const bool obj = kind_ == Kind::Object;
    out += obj ? '{' : '[';
    // Small objects (params, measured) on one line; the case list one case per line.
    const bool newline = indent > 0 && depth < 2 && !obj;
    for (std::size_t i = 0; i < items_.size(); ++i) {
        if (i) out += ',';
        if (newline) {
            out += '\n';
            out.append(static_cast<std::size_t>(indent * (depth + 1)), ' ');
        }
        if (obj) {
            out += escape(items_[i].first);
            out += ':';
        }
        items_[i].second.dump_to(out, indent, depth + 1);
    }
    if (newline && !items_.empty()) {
        out += '\n';
        out.append(static_cast<std::size_t>(indent * depth), ' ');
    }
    out += obj ? '}' : ']';
}
std::string Json::dump(int indent) const {
    std::string out;
    dump_to(out, indent, 0);
    return out;
}

// ---- Arena ---------------------------------------------------------------------------------
Arena::Arena() {
    CK(cudaDeviceSynchronize());
    std::size_t total = 0;
    CK(cudaMemGetInfo(&free_at_start_, &total));
    int device = 0;
    CK(cudaGetDevice(&device));
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    CK(cudaMemPoolCreate(&pool_, &props));
    // Keep what the pool reserves until the arena ends: a free inside a case must not trim it.
    std::uint64_t keep = ~std::uint64_t{0};  // the attribute is a cuuint64_t (uint64)
    CK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep));
}
Arena::~Arena() {
    cudaDeviceSynchronize();
    for (auto& b : blocks_)
        if (b.second.first) cudaFreeAsync(b.second.first, 0);
    cudaDeviceSynchronize();
    if (pool_) cudaMemPoolDestroy(pool_);
}
void* Arena::alloc(const std::string& name, std::size_t bytes) {
    void* p = nullptr;
    if (bytes == 0) {  // nothing to allocate; the case records a zero-byte buffer
        blocks_.push_back({name, {p, bytes}});
        return p;
    }
    // Stream-ordered on the legacy stream, then synchronised, so that every stream may use it.
    CK(cudaMallocFromPoolAsync(&p, bytes, pool_, 0));
    CK(cudaStreamSynchronize(0));
    blocks_.push_back({name, {p, bytes}});
    allocated_ += bytes;
    return p;
}
std::uint64_t Arena::pool_used_high() const {
    std::uint64_t v = 0;
    CK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &v));
    return v;
}
std::uint64_t Arena::pool_reserved_high() const {
    std::uint64_t v = 0;
    CK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &v));
    return v;
}
std::int64_t Arena::driver_delta() const {
    std::size_t free_now = 0, total = 0;
    CK(cudaMemGetInfo(&free_now, &total));
    return static_cast<std::int64_t>(free_at_start_) - static_cast<std::int64_t>(free_now);
}
Json Arena::buffer_list() const {
    Json o = Json::object();
    for (auto& b : blocks_) o.set(b.first, Json::integer(b.second.second));
    return o;
}

std::size_t free_bytes() {
    std::size_t f = 0, t = 0;
    CK(cudaMemGetInfo(&f, &t));
    return f;
}

// ---- timing ----
static void* g_flush = nullptr;
static std::size_t g_flush_bytes = 0;
void init_l2_flush(std::size_t l2_bytes) {
    g_flush_bytes = 2 * l2_bytes;
    CK(cudaMalloc(&g_flush, g_flush_bytes));
}
static void flush_l2(cudaStream_t s) {
    static unsigned char v = 0;
    if (g_flush) CK(cudaMemsetAsync(g_flush, ++v, g_flush_bytes, s));
}
TimeStats time_runs(const std::function<void(cudaStream_t)>& run, const std::function<void(cudaStream_t)>& before, cudaStream_t stream,
                    int warmup, int min_runs, int max_runs, double target_s) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < warmup; ++i) {
        if (before) before(stream);
        run(stream);
    }
    CK(cudaStreamSynchronize(stream));
    std::vector<double> t;
    double total = 0;
    while (static_cast<int>(t.size()) < max_runs && (static_cast<int>(t.size()) < min_runs || total < target_s)) {
        if (before) before(stream);
        flush_l2(stream);
        CK(cudaEventRecord(a, stream));
        run(stream);
        CK(cudaEventRecord(b, stream));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms * 1e-3);
        total += ms * 1e-3;
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    auto q = [&](double f) { return t[static_cast<std::size_t>(f * static_cast<double>(t.size() - 1) + 0.5)]; };
    TimeStats s;
    s.median = t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
    s.p10 = q(0.1);
    s.p90 = q(0.9);
    s.min = t.front();
    s.runs = static_cast<int>(t.size());
    return s;
}

StageTimes time_stages(const std::vector<Stage>& stages, const std::function<void(cudaStream_t)>& before, cudaStream_t stream, int warmup,
                       int min_runs, int max_runs, double target_s) {
    StageTimes r;
    r.total = time_runs(
        [&](cudaStream_t s) {
            for (const auto& st : stages) st.run(s);
        },
        before, stream, warmup, min_runs, max_runs, target_s);
    if (stages.size() > 1)
        for (const auto& st : stages)
            r.stages.emplace_back(st.name, time_runs(st.run, before, stream, 1, min_runs, max_runs, target_s / 2));
    return r;
}

// ---- fills and checks ----------------------------------------------------------------------
__device__ __forceinline__ float hash_uniform(std::uint64_t i, std::uint32_t seed) {
    std::uint64_t x = i * 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(seed) << 32 | seed);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    float u = static_cast<float>(x >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    float v = 2.0f * u - 1.0f;
    return v == 0.0f ? 0.5f : v;
}

__global__ void k_fill(void* p, std::size_t n, int dt, std::uint32_t seed, float scale) {
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        float v = scale * hash_uniform(i, seed);
        switch (dt) {
            case 0:
                static_cast<float*>(p)[i] = v;
                break;
            case 1:
                static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v);
                break;
            case 2:
                static_cast<__half*>(p)[i] = __float2half(v);
                break;
            case 3:
                static_cast<__nv_fp8_e4m3*>(p)[i] = __nv_fp8_e4m3(v);
                break;
            default:
                static_cast<int*>(p)[i] = static_cast<int>(v * 1000);
                break;
        }
    }
}

static int grid_for(std::size_t n, int threads) {
    std::size_t g = (n + threads - 1) / threads;
    return static_cast<int>(std::min<std::size_t>(std::max<std::size_t>(g, 1), 65536));
}

void fill_random(void* p, std::size_t count, DT dt, std::uint32_t seed, float scale, cudaStream_t s) {
    k_fill<<<grid_for(count, 256), 256, 0, s>>>(p, count, static_cast<int>(dt), seed, scale);
    CK_LAUNCH();
}

void poison(void* p, std::size_t bytes, cudaStream_t s) { CK(cudaMemsetAsync(p, 0xFF, bytes, s)); }

__global__ void k_count_poison(const unsigned char* p, std::size_t n, int size, unsigned long long* out) {
    unsigned long long c = 0;
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        bool all = true;
        for (int k = 0; k < size; ++k) all = all && p[i * size + k] == 0xFF;
        c += all;
    }
    if (c) atomicAdd(out, c);
}

std::uint64_t count_poison(const void* p, std::size_t count, DT dt, cudaStream_t s) {
    unsigned long long* d = nullptr;
    CK(cudaMalloc(&d, sizeof *d));
    CK(cudaMemsetAsync(d, 0, sizeof *d, s));
    k_count_poison<<<grid_for(count, 256), 256, 0, s>>>(static_cast<const unsigned char*>(p), count, static_cast<int>(dt_size(dt)), d);
    CK_LAUNCH();
    unsigned long long h = 0;
    CK(cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    CK(cudaFree(d));
    return h;
}

std::vector<double> to_host(const void* p, std::size_t count, DT dt) {
    std::vector<unsigned char> raw(count * dt_size(dt));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(raw.data(), p, raw.size(), cudaMemcpyDeviceToHost));
    std::vector<double> out(count);
    for (std::size_t i = 0; i < count; ++i) {
        const unsigned char* e = raw.data() + i * dt_size(dt);
        switch (dt) {
            case DT::F32: {
                float f;
                std::memcpy(&f, e, 4);
                out[i] = f;
                break;
            }
            case DT::BF16: {
                __nv_bfloat16 h;
                std::memcpy(&h, e, 2);
                out[i] = __bfloat162float(h);
                break;
            }
            case DT::F16: {
                __half h;
                std::memcpy(&h, e, 2);
                out[i] = __half2float(h);
                break;
            }
            case DT::E4M3: {
                __nv_fp8_e4m3 h;
                std::memcpy(&h, e, 1);
                out[i] = static_cast<float>(h);
                break;
            }
            case DT::I32: {
                int v;
                std::memcpy(&v, e, 4);
                out[i] = v;
                break;
            }
        }
    }
    return out;
}

double rel_error(const std::vector<double>& out, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < out.size() && i < ref.size(); ++i) {
        if (!std::isfinite(out[i])) return INFINITY;
        num += (out[i] - ref[i]) * (out[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    if (out.size() != ref.size()) return INFINITY;
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// ---- cases ---------------------------------------------------------------------------------
Json Case::to_json() const {
    Json j = Json::object();
    j.set("id", Json::str(id)).set("kind", Json::str(kind)).set("params", params).set("status", Json::str(status));
    if (!reason.empty()) j.set("reason", Json::str(reason));
    if (status != "skipped") j.set("measured", measured);
    return j;
}

void record(Case& c, const Arena& a, const StageTimes& st, std::uint64_t unwritten) {
    const TimeStats& t = st.total;
    c.measured.set("allocated_bytes", Json::integer(a.allocated()));
    std::int64_t delta = a.driver_delta();
    c.measured.set("driver_bytes", Json::integer(delta > 0 ? static_cast<std::uint64_t>(delta) : 0));
    c.measured.set("device_used_bytes", Json::integer(a.pool_used_high()));
    c.measured.set("device_reserved_bytes", Json::integer(a.pool_reserved_high()));
    c.measured.set("buffers", a.buffer_list());
    c.measured.set("time_s", Json::num(t.median));
    c.measured.set("time_p10_s", Json::num(t.p10));
    c.measured.set("time_p90_s", Json::num(t.p90));
    c.measured.set("runs", Json::integer(static_cast<std::uint64_t>(t.runs)));
    if (!st.stages.empty()) {
        Json k = Json::array();
        for (const auto& s : st.stages)
            k.push(Json::object()
                       .set("name", Json::str(s.first))
                       .set("time_s", Json::num(s.second.median))
                       .set("runs", Json::integer(static_cast<std::uint64_t>(s.second.runs))));
        c.measured.set("kernels", k);
    }
    c.measured.set("unwritten_outputs", Json::integer(unwritten));
    if (unwritten) {
        c.status = "failed";
        c.reason = std::to_string(unwritten) + " output elements still hold the poison after the runs";
    }
}

bool skip_if_too_big(Case& c, std::uint64_t need) {
    const std::size_t margin = 512ull << 20;  // context, handles, fragmentation
    std::size_t f = free_bytes();
    if (need + margin <= f) return false;
    char b[160];
    std::snprintf(b, sizeof b, "needs %.2f GiB, the device has %.2f GiB free", need / 1073741824.0, f / 1073741824.0);
    c.status = "skipped";
    c.reason = b;
    return true;
}

}  // namespace probe
