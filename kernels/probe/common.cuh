// memtax-probe: shared pieces — checked CUDA calls, the one tracking allocator every case
// allocates through, timing with CUDA events, fills and poison checks, and the JSON writer.
// The probe builds with the CUDA toolkit alone (no yaml-cpp, fmt, nlohmann-json: GPU hosts
// often have only the driver and the toolkit), hence the small hand-written JSON writer below.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace probe {

struct ProbeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void cuda_check(cudaError_t e, const char* what, const char* file, int line);
void cublas_check(cublasStatus_t s, const char* what, const char* file, int line);
#define CK(x) ::probe::cuda_check((x), #x, __FILE__, __LINE__)
#define CKB(x) ::probe::cublas_check((x), #x, __FILE__, __LINE__)
// After every launch: the launch error now, the execution error at the next synchronisation.
#define CK_LAUNCH() ::probe::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

enum class DT { F32, BF16, F16, E4M3, I32 };
std::size_t dt_size(DT d);
const char* dt_name(DT d);

// A JSON value built by hand (see the header comment for why no library).
class Json {
public:
    static Json str(const std::string& s);
    static Json num(double v);
    static Json integer(std::uint64_t v);
    static Json boolean(bool b);
    static Json object();
    static Json array();
    Json& set(const std::string& key, Json v);  // objects: keys keep insertion order
    Json& push(Json v);                         // arrays
    std::string dump(int indent = 0) const;
    bool empty() const { return items_.empty(); }

private:
    enum class Kind { Raw, Object, Array } kind_ = Kind::Raw;
    std::string raw_;
    std::vector<std::pair<std::string, Json>> items_;
    void dump_to(std::string& out, int indent, int depth) const;
};

// Every byte a case needs goes through one Arena. `allocated()` is the probe's own bookkeeping
// (the sizes it asked for), not a measurement. The measurements are the device's: each Arena
// allocates from a memory pool of its own (cudaMemPoolCreate, cudaMallocFromPoolAsync), whose
// used and reserved high-water marks the driver keeps (cudaMemPoolAttrUsedMemHigh,
// cudaMemPoolAttrReservedMemHigh: reserved − used is the pool's rounding and fragmentation), and
// cudaMemGetInfo before and after gives what the device lost in all.
class Arena {
public:
    Arena();
    ~Arena();
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    void* alloc(const std::string& name, std::size_t bytes);
    template <class T>
    T* get(const std::string& name, std::size_t count) {
        return static_cast<T*>(alloc(name, count * sizeof(T)));
    }
    std::uint64_t allocated() const { return allocated_; }
    std::size_t buffers() const { return blocks_.size(); }
    // Free device memory when the arena was created minus free memory now.
    std::int64_t driver_delta() const;
    // The pool's high-water marks, as the driver counts them.
    std::uint64_t pool_used_high() const;
    std::uint64_t pool_reserved_high() const;
    Json buffer_list() const;

private:
    std::vector<std::pair<std::string, std::pair<void*, std::size_t>>> blocks_;
    std::uint64_t allocated_ = 0;
    std::size_t free_at_start_ = 0;
    cudaMemPool_t pool_ = nullptr;
};

struct TimeStats {
    double median = 0, p10 = 0, p90 = 0, min = 0;
    int runs = 0;
};

// Times `run` with CUDA events: `warmup` untimed runs, then at least `min_runs` and until
// `target_s` of device time or `max_runs`. `before` (poisoning the outputs) runs before each
// run, outside the timed region.
TimeStats time_runs(const std::function<void(cudaStream_t)>& run, const std::function<void(cudaStream_t)>& before, cudaStream_t stream,
                    int warmup = 3, int min_runs = 10, int max_runs = 200, double target_s = 0.25);

// A scratch buffer of twice the L2 that time_runs overwrites before every timed run, so each
// run starts with a cold L2, as a layer's weights and KV are when the model comes back to them.
void init_l2_flush(std::size_t l2_bytes);

// A case's kernels in order; the case is timed whole, then each kernel alone (same warm-up,
// L2 flush and poisoning), so a prediction can be checked kernel by kernel.
struct Stage {
    std::string name;
    std::function<void(cudaStream_t)> run;
};
struct StageTimes {
    TimeStats total;
    std::vector<std::pair<std::string, TimeStats>> stages;  // empty for a one-kernel case
};
StageTimes time_stages(const std::vector<Stage>& stages, const std::function<void(cudaStream_t)>& before, cudaStream_t stream,
                       int warmup = 3, int min_runs = 10, int max_runs = 200, double target_s = 0.25);

// Deterministic pseudo-random fill in [-scale, scale) (never zeros: they hide unwritten outputs).
void fill_random(void* p, std::size_t count, DT dt, std::uint32_t seed, float scale, cudaStream_t s);
// Fills every byte with 0xFF: NaN in fp32, bf16, fp16 and fp8 e4m3.
void poison(void* p, std::size_t bytes, cudaStream_t s);
// How many elements still hold the poison pattern (unwritten outputs).
std::uint64_t count_poison(const void* p, std::size_t count, DT dt, cudaStream_t s);
// Device data to host doubles (for references at small sizes).
std::vector<double> to_host(const void* p, std::size_t count, DT dt);
// ‖out − ref‖ / ‖ref‖ (NaN in `out` gives infinity).
double rel_error(const std::vector<double>& out, const std::vector<double>& ref);

struct Device {
    int index = 0;
    cudaDeviceProp prop{};
    int sm = 0;  // compute capability major*10 + minor
    std::size_t total = 0;
    cublasHandle_t blas = nullptr;
    cublasLtHandle_t lt = nullptr;
    cudaStream_t stream = nullptr;
    bool quick = false;  // fewer shapes and runs (smoke test)
};

// Free device memory now, less a margin, for skipping cases that cannot fit.
std::size_t free_bytes();

struct Case {
    std::string id, kind;
    Json params = Json::object();
    std::string status = "ok";
    std::string reason;
    Json measured = Json::object();
    Json to_json() const;
};

struct Check {  // a correctness check at a small size against a higher-precision reference
    std::string suite, what;
    double rel_error = 0, tolerance = 0;
    std::uint64_t unwritten = 0;
    bool passed() const { return unwritten == 0 && rel_error <= tolerance; }
};

struct Results {
    std::vector<Case> cases;
    std::vector<Check> checks;
};

// Fills a case's measured block: allocation, driver delta, time, outputs written.
void record(Case& c, const Arena& a, const StageTimes& t, std::uint64_t unwritten);
// A case that needs more than the device has free is skipped with the reason.
bool skip_if_too_big(Case& c, std::uint64_t need);

// Suites (one translation unit each family).
void suite_stream(Device& d, Results& r);
void suite_decode_paged(Device& d, Results& r);
void suite_gemm(Device& d, Results& r);
void suite_mlp(Device& d, Results& r);
void suite_attention(Device& d, Results& r, bool eager, bool flash);
void suite_allreduce(Device& d, Results& r);

// cuBLASLt C[M×N] = A[M×K] · W[N×K]ᵀ (row-major, nn.Linear's layout), fp32 accumulation.
// Output bf16 for bf16/fp8 inputs, fp16 for fp16.
struct LtGemm {
    bool ok = false;
    std::string why;  // when !ok: why cuBLASLt has no algorithm for it
    DT in = DT::BF16, out = DT::BF16;
    std::size_t workspace = 0;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulAlgo_t algo{};
    LtGemm(Device& d, DT in, std::uint64_t M, std::uint64_t N, std::uint64_t K, std::size_t workspace_bytes);
    ~LtGemm();
    LtGemm(const LtGemm&) = delete;
    LtGemm& operator=(const LtGemm&) = delete;
    void run(Device& d, const void* A, const void* W, void* C, void* ws, cudaStream_t s) const;
};
inline constexpr std::size_t kLtWorkspace = 32u << 20;  // NVIDIA's advice for Hopper: 32 MiB

}  // namespace probe
