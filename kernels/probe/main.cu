// memtax-probe: runs the GPU microkernel suites and writes one measurement file (schema
// memtax.measurements/1, docs/measurement-schema.md) that `memtax calibrate` and
// `memtax validate` read.
//   memtax-probe [--suites stream,gemm,...] [--output FILE] [--quick] [--device N] [--list]
// Exit: 0 every case ran and every correctness check passed; 1 a check or case failed;
// 2 bad command line; 3 a CUDA error; 4 no usable CUDA device on this host (none, or older than sm_80).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common.cuh"

namespace {

const std::vector<std::string> kSuites = {"stream", "gemm", "attention-eager", "attention-flash", "decode-paged", "mlp", "allreduce"};

int usage(const char* msg) {
    if (msg) std::fprintf(stderr, "memtax-probe: %s\n", msg);
    std::fprintf(stderr,
                 "usage: memtax-probe [--suites LIST] [--output FILE] [--quick] [--device N] [--list]\n"
                 "  suites: stream, gemm, attention-eager, attention-flash, decode-paged, mlp, allreduce (default: all;\n"
                 "  allreduce uses every GPU of the host through NCCL)\n");
    return 2;
}

std::string driver_version() {
    // The kernel module's version, as nvidia-smi prints it; the CUDA driver API only has "13.0".
    std::ifstream f("/proc/driver/nvidia/version");
    std::string line;
    if (f && std::getline(f, line)) {
        std::istringstream is(line);
        std::string w;
        while (is >> w)
            if (w.size() > 4 && w.find('.') != std::string::npos && std::isdigit(static_cast<unsigned char>(w[0]))) return w;
    }
    int v = 0;
    cudaDriverGetVersion(&v);
    return "cuda-driver-api-" + std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

// The lease: this boot of the machine (Linux's boot_id; "unknown" elsewhere). Two runs with the
// same boot id are one lease, so one cannot be the other's out-of-sample check.
std::string boot_id() {
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::string id;
    return f && std::getline(f, id) && !id.empty() ? id : "unknown";
}

std::string now_utc() {
    std::time_t t = std::time(nullptr);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    std::set<std::string> suites;
    std::string output = "memtax-probe.json";
    probe::Device dev;
    // The command as provenance: the output's folder is this host's, so it is written as $OUT.
    std::string command = "memtax-probe";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i > 1 && std::string(argv[i - 1]) == "--output") {
            const size_t slash = a.rfind('/');
            a = "$OUT/" + (slash == std::string::npos ? a : a.substr(slash + 1));
        }
        command += " " + a;
    }
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "--list") {
            for (auto& s : kSuites) std::printf("%s\n", s.c_str());
            return 0;
        } else if (a == "--help" || a == "-h") {
            usage(nullptr);
            return 0;
        } else if (a == "--quick") {
            dev.quick = true;
        } else if (a == "--suites") {
            const char* v = value();
            if (!v) return usage("--suites needs a comma-separated list");
            std::stringstream ss(v);
            std::string s;
            while (std::getline(ss, s, ',')) {
                bool known = false;
                for (auto& k : kSuites) known = known || k == s;
                if (!known) return usage(("unknown suite '" + s + "'").c_str());
                suites.insert(s);
            }
        } else if (a == "--output") {
            const char* v = value();
            if (!v) return usage("--output needs a file");
            output = v;
        } else if (a == "--device") {
            const char* v = value();
            if (!v || !std::isdigit(static_cast<unsigned char>(v[0]))) return usage("--device needs a device index");
            dev.index = std::atoi(v);
        } else {
            return usage(("unknown argument '" + a + "'").c_str());
        }
    }
    if (suites.empty()) suites.insert(kSuites.begin(), kSuites.end());

    probe::Results res;
    probe::Json prov = probe::Json::object();
    try {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess || n == 0) {
            std::fprintf(stderr, "memtax-probe: no usable CUDA device (%s)\n", e == cudaSuccess ? "none found" : cudaGetErrorString(e));
            return 4;
        }
        if (dev.index >= n) {
            std::fprintf(stderr, "memtax-probe: --device %d: only %d device(s)\n", dev.index, n);
            return 2;
        }
        CK(cudaSetDevice(dev.index));
        CK(cudaGetDeviceProperties(&dev.prop, dev.index));
        dev.sm = dev.prop.major * 10 + dev.prop.minor;
        if (dev.sm < 80) {
            std::fprintf(stderr, "memtax-probe: %s has compute capability %d.%d; the kernels need 8.0 or newer\n", dev.prop.name,
                         dev.prop.major, dev.prop.minor);
            return 4;
        }
        std::size_t free0 = 0;
        CK(cudaMemGetInfo(&free0, &dev.total));
        CKB(cublasCreate(&dev.blas));
        CKB(cublasLtCreate(&dev.lt));
        CK(cudaStreamCreateWithFlags(&dev.stream, cudaStreamNonBlocking));
        probe::init_l2_flush(static_cast<std::size_t>(dev.prop.l2CacheSize));
        int rt = 0, cublas_v = 0;
        CK(cudaRuntimeGetVersion(&rt));
        CKB(cublasGetVersion(dev.blas, &cublas_v));
        prov.set("gpu", probe::Json::str(dev.prop.name))
            .set("driver", probe::Json::str(driver_version()))
            .set("cuda_runtime", probe::Json::str(std::to_string(rt / 1000) + "." + std::to_string((rt % 1000) / 10)))
            .set("cublas", probe::Json::str(std::to_string(cublas_v)))
            .set("compute_capability", probe::Json::str(std::to_string(dev.prop.major) + "." + std::to_string(dev.prop.minor)))
            .set("sm_count", probe::Json::str(std::to_string(dev.prop.multiProcessorCount)))
            .set("l2_bytes", probe::Json::str(std::to_string(dev.prop.l2CacheSize)))
            .set("memory_total_bytes", probe::Json::str(std::to_string(dev.total)))
            .set("date", probe::Json::str(now_utc()))
            .set("lease", probe::Json::str(boot_id()))
            .set("command", probe::Json::str(command))
            .set("timing", probe::Json::str("CUDA events around each run, L2 flushed and outputs poisoned before each; "
                                            "warm-up runs first; median of the runs"));
        std::fprintf(stderr, "memtax-probe: %s (sm_%d, %d SMs, %.1f GiB)\n", dev.prop.name, dev.sm, dev.prop.multiProcessorCount,
                     dev.total / 1073741824.0);
        for (const auto& s : kSuites) {
            if (!suites.count(s)) continue;
            std::fprintf(stderr, "memtax-probe: suite %s ...\n", s.c_str());
            const std::size_t before = res.cases.size();
            if (s == "stream")
                probe::suite_stream(dev, res);
            else if (s == "gemm")
                probe::suite_gemm(dev, res);
            else if (s == "attention-eager")
                probe::suite_attention(dev, res, true, false);
            else if (s == "attention-flash")
                probe::suite_attention(dev, res, false, true);
            else if (s == "decode-paged")
                probe::suite_decode_paged(dev, res);
            else if (s == "mlp")
                probe::suite_mlp(dev, res);
            else if (s == "allreduce")
                probe::suite_allreduce(dev, res);
            for (std::size_t i = before; i < res.cases.size(); ++i) {
                const auto& c = res.cases[i];
                std::fprintf(stderr, "  %-44s %s%s%s\n", c.id.c_str(), c.status.c_str(), c.reason.empty() ? "" : ": ", c.reason.c_str());
            }
        }
    } catch (const probe::ProbeError& e) {
        std::fprintf(stderr, "memtax-probe: %s\n", e.what());
        return 3;
    }

    probe::Json root = probe::Json::object();
    root.set("schema", probe::Json::str("memtax.measurements/1")).set("source", probe::Json::str("memtax-probe")).set("provenance", prov);
    probe::Json checks = probe::Json::array();
    bool ok = true;
    for (const auto& c : res.checks) {
        ok = ok && c.passed();
        probe::Json j = probe::Json::object();
        j.set("suite", probe::Json::str(c.suite))
            .set("what", probe::Json::str(c.what))
            .set("rel_error", probe::Json::num(c.rel_error))
            .set("tolerance", probe::Json::num(c.tolerance))
            .set("unwritten_outputs", probe::Json::integer(c.unwritten))
            .set("passed", probe::Json::boolean(c.passed()));
        checks.push(j);
        std::fprintf(stderr, "check %-16s %-44s rel error %.2e (tolerance %.0e) %s\n", c.suite.c_str(), c.what.c_str(), c.rel_error,
                     c.tolerance, c.passed() ? "passed" : "FAILED");
    }
    root.set("checks", checks);
    probe::Json cases = probe::Json::array();
    for (const auto& c : res.cases) {
        ok = ok && c.status != "failed";
        cases.push(c.to_json());
    }
    root.set("cases", cases);
    // Written whole to a temporary file, then renamed: a reader never sees half a file.
    const std::string tmp = output + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << root.dump(1) << '\n';
        f.flush();
        if (!f) {
            std::fprintf(stderr, "memtax-probe: cannot write %s\n", tmp.c_str());
            return 3;
        }
    }
    if (std::rename(tmp.c_str(), output.c_str()) != 0) {
        std::fprintf(stderr, "memtax-probe: cannot rename %s to %s\n", tmp.c_str(), output.c_str());
        return 3;
    }
    std::fprintf(stderr, "memtax-probe: %zu cases, %zu checks -> %s\n", res.cases.size(), res.checks.size(), output.c_str());
    return ok ? 0 : 1;
}
