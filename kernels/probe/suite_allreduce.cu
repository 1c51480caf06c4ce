// `allreduce`: NCCL all-reduce of bf16 messages across every GPU of the host (one process,
// ncclCommInitAll), out of place, 8 KiB to 1 GiB per GPU: the tensor-parallel communication
// term. Built only where NCCL is found (it is not part of every CUDA toolkit).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.cuh"

#ifdef MEMTAX_PROBE_NCCL
#include <nccl.h>
#endif

namespace probe {

#ifdef MEMTAX_PROBE_NCCL
namespace {

void nccl_check(ncclResult_t r, const char* what, const char* file, int line) {
    if (r == ncclSuccess) return;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s:%d: %s failed: %s", file, line, what, ncclGetErrorString(r));
    throw ProbeError(buf);
}
#define CKN(x) nccl_check((x), #x, __FILE__, __LINE__)

struct Ranks {
    int n = 0;
    std::vector<ncclComm_t> comms;
    std::vector<cudaStream_t> streams;
    std::vector<void*> send, recv;
    ~Ranks() {
        for (int i = 0; i < n; ++i) {
            cudaSetDevice(i);
            if (i < static_cast<int>(send.size()) && send[i]) cudaFree(send[i]);
            if (i < static_cast<int>(recv.size()) && recv[i]) cudaFree(recv[i]);
        }
    }
    void alloc(std::size_t bytes) {
        send.assign(n, nullptr);
        recv.assign(n, nullptr);
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            CK(cudaMalloc(&send[i], bytes));
            CK(cudaMalloc(&recv[i], bytes));
        }
        CK(cudaSetDevice(0));
    }
    void release() {
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            CK(cudaFree(send[i]));
            CK(cudaFree(recv[i]));
            send[i] = recv[i] = nullptr;
        }
        CK(cudaSetDevice(0));
    }
    void all_reduce(std::size_t count) {
        CKN(ncclGroupStart());
        for (int i = 0; i < n; ++i) CKN(ncclAllReduce(send[i], recv[i], count, ncclBfloat16, ncclSum, comms[i], streams[i]));
        CKN(ncclGroupEnd());
    }
    void sync() {
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            CK(cudaStreamSynchronize(streams[i]));
        }
        CK(cudaSetDevice(0));
    }
};

}  // namespace
#endif

void suite_allreduce(Device& d, Results& r) {
    int n = 0;
    CK(cudaGetDeviceCount(&n));
    Case skip;
    skip.kind = "allreduce";
    skip.id = "allreduce/skipped";
    skip.params.set("gpus", Json::integer(static_cast<std::uint64_t>(n))).set("bytes", Json::integer(0)).set("dtype", Json::str("bf16"));
    skip.status = "skipped";
#ifndef MEMTAX_PROBE_NCCL
    skip.reason = "memtax-probe was built without NCCL (configure kernels/ with NCCL found, e.g. -DMEMTAX_NCCL_ROOT=...)";
    r.cases.push_back(skip);
    (void)d;
#else
    if (n < 2) {
        skip.reason = "needs two or more GPUs; this host has " + std::to_string(n);
        r.cases.push_back(skip);
        return;
    }
    // NVLink multicast (NVLS) stays off: this workplace's shared hosts require it, and the
    // ring / tree algorithms are what the time model describes. An explicit setting wins.
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    Ranks k;
    k.n = n;
    k.comms.resize(n);
    k.streams.resize(n);
    std::vector<int> devs(n);
    for (int i = 0; i < n; ++i) devs[i] = i;
    CKN(ncclCommInitAll(k.comms.data(), n, devs.data()));
    for (int i = 0; i < n; ++i) {
        CK(cudaSetDevice(i));
        CK(cudaStreamCreateWithFlags(&k.streams[i], cudaStreamNonBlocking));
    }
    CK(cudaSetDevice(0));
    // Correctness: each rank holds its own pseudo-random values; the sum against float64.
    {
        const std::size_t count = 4096;
        k.alloc(count * 2);
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            fill_random(k.send[i], count, DT::BF16, 100 + i, 1.0f, k.streams[i]);
            poison(k.recv[i], count * 2, k.streams[i]);
        }
        k.sync();
        k.all_reduce(count);
        k.sync();
        std::vector<double> ref(count, 0.0);
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            auto v = to_host(k.send[i], count, DT::BF16);
            for (std::size_t j = 0; j < count; ++j) ref[j] += v[j];
        }
        double worst = 0;
        std::uint64_t unwritten = 0;
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            unwritten += count_poison(k.recv[i], count, DT::BF16, k.streams[i]);
            worst = std::max(worst, rel_error(to_host(k.recv[i], count, DT::BF16), ref));
        }
        CK(cudaSetDevice(0));
        k.release();
        r.checks.push_back({"allreduce", std::to_string(n) + " GPUs, 4096 bf16 sums vs float64 (worst rank)", worst, 1e-2, unwritten});
    }
    std::vector<std::size_t> sizes = {8u << 10, 64u << 10, 512u << 10, 4u << 20, 32u << 20, 256u << 20, 1u << 30};
    if (d.quick) sizes = {64u << 10, 32u << 20};
    for (std::size_t bytes : sizes) {
        Case c;
        c.kind = "allreduce";
        c.id = "allreduce/" + std::to_string(n) + "gpu/" + std::to_string(bytes);
        c.params.set("gpus", Json::integer(static_cast<std::uint64_t>(n)))
            .set("bytes", Json::integer(bytes))
            .set("dtype", Json::str("bf16"));
        if (skip_if_too_big(c, 2 * bytes)) {
            r.cases.push_back(c);
            continue;
        }
        std::size_t free0 = 0, total = 0, free1 = 0;
        CK(cudaDeviceSynchronize());
        CK(cudaMemGetInfo(&free0, &total));
        k.alloc(bytes);
        CK(cudaMemGetInfo(&free1, &total));
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            fill_random(k.send[i], bytes / 2, DT::BF16, 7 + i, 1.0f, k.streams[i]);
        }
        CK(cudaSetDevice(0));
        k.sync();
        // Timed on rank 0's stream; the collective completes on every rank together.
        TimeStats t = time_runs([&](cudaStream_t) { k.all_reduce(bytes / 2); },
                                [&](cudaStream_t) {
                                    for (int i = 0; i < n; ++i) {
                                        CK(cudaSetDevice(i));
                                        poison(k.recv[i], bytes, k.streams[i]);
                                        CK(cudaStreamSynchronize(k.streams[i]));
                                    }
                                    CK(cudaSetDevice(0));
                                },
                                k.streams[0], 3, 10, 200, 0.1);
        k.sync();
        std::uint64_t unwritten = 0;
        for (int i = 0; i < n; ++i) {
            CK(cudaSetDevice(i));
            unwritten += count_poison(k.recv[i], bytes / 2, DT::BF16, k.streams[i]);
        }
        CK(cudaSetDevice(0));
        c.measured.set("allocated_bytes", Json::integer(2 * bytes));
        c.measured.set("driver_bytes", Json::integer(free0 > free1 ? free0 - free1 : 0));
        c.measured.set("buffers", Json::object().set("send", Json::integer(bytes)).set("recv", Json::integer(bytes)));
        c.measured.set("time_s", Json::num(t.median)).set("time_p10_s", Json::num(t.p10)).set("time_p90_s", Json::num(t.p90));
        c.measured.set("runs", Json::integer(static_cast<std::uint64_t>(t.runs))).set("unwritten_outputs", Json::integer(unwritten));
        if (unwritten) {
            c.status = "failed";
            c.reason = std::to_string(unwritten) + " output elements still hold the poison after the runs";
        }
        k.release();
        r.cases.push_back(c);
    }
    for (auto& comm : k.comms) ncclCommDestroy(comm);
#endif
}

}  // namespace probe
