// Op-graph liveness, checked on graphs small enough to derive by hand.
#include <gtest/gtest.h>

#include "graph/op_graph.hpp"

using namespace memtax;

namespace {

std::array<DType, kDtypeRoles> bf16_dtypes(bool softmax_fp32 = true) {
    std::array<DType, kDtypeRoles> d;
    DType bf16, fp32;
    parse_dtype("bf16", bf16);
    parse_dtype("fp32", fp32);
    for (auto& x : d) x = bf16;
    d[static_cast<size_t>(DtypeRole::Softmax)] = softmax_fp32 ? fp32 : bf16;
    d[static_cast<size_t>(DtypeRole::Fp32)] = fp32;
    d[static_cast<size_t>(DtypeRole::Index)] = DType{"int64", 64, 0, 0};
    return d;
}

TensorInfo t(const char* name, Size s, DtypeRole r = DtypeRole::Act) { return TensorInfo{name, s, r}; }
OpInfo op(const char* name, OpKind k = OpKind::Elementwise) { return OpInfo{name, k, OpGroup::Residual, {}, {}, {}}; }

}  // namespace

// x(8 B) -> a(16 B) -> b(4 B); c = f(x, b)(8 B). bf16 elements: x 4, a 4·B, b B, c 4 with B = 2.
//   op up: x + a = 8 + 16 = 24; op down: x + a + b = 28 (a dies after); op mix: x + b + c = 20.
TEST(OpGraph, LivenessPeakByHand) {
    OpGraph g("toy", bf16_dtypes(), 1);
    int x = g.input(t("x", Size(4, {})));
    int a = g.op1(op("up", OpKind::Matmul), {x}, t("a", Size(4, {Sym::Batch})));
    int b = g.op1(op("down", OpKind::Matmul), {a}, t("b", Size(1, {Sym::Batch})));
    g.op1(op("mix"), {x, b}, TensorInfo{"c", Size(4, {}), DtypeRole::Act, Category::Activation, Lifetime::Persistent});
    g.finalize();
    Bindings bind;
    bind[Sym::Batch] = 2;
    GraphEval r = g.evaluate(bind);
    EXPECT_FALSE(r.overflow);
    EXPECT_EQ(r.preexisting, 8u);
    EXPECT_EQ(r.peak_bytes, 28u);
    EXPECT_STREQ(g.ops().at(static_cast<size_t>(r.peak_op)).name, "down");
    EXPECT_EQ(r.persistent_other, 8u);
}

TEST(OpGraph, WorkspaceAndHoldsExtendLiveness) {
    OpGraph g("toy", bf16_dtypes(), 1);
    int x = g.input(t("x", Size(10, {})));
    OpInfo with_ws = op("a");
    with_ws.workspace.push_back({Size(10, {}), DtypeRole::Fp32});
    int a = g.op1(with_ws, {x}, t("a", Size(10, {})));
    // b does not read x, but holds it: x stays alive through op b.
    g.op1(op("b"), {a}, t("b", Size(10, {})), {x});
    g.finalize();
    GraphEval r = g.evaluate(Bindings{});
    // op a: x 20 + a 20 + fp32 workspace 40 = 80; op b: x 20 + a 20 + b 20 = 60.
    EXPECT_EQ(r.peak_bytes, 80u);
    EXPECT_EQ(r.peak_op, 0);
}

TEST(OpGraph, ActiveAliasCostsNothing) {
    auto build = [](AliasRule cast_alias, bool softmax_fp32) {
        OpGraph g("toy", bf16_dtypes(softmax_fp32), 1);
        int x = g.input(t("x", Size(10, {})));
        int p = g.op1(op("softmax", OpKind::Softmax), {x}, t("p", Size(10, {}), DtypeRole::Softmax));
        int c = g.op1(op("cast", OpKind::Copy), {p},
                      TensorInfo{"c", Size(10, {}), DtypeRole::Act, Category::Activation, Lifetime::Transient, cast_alias});
        g.op1(op("use"), {c}, t("o", Size(10, {})));
        g.finalize();
        return g.evaluate(Bindings{}).peak_bytes;
    };
    // fp32 softmax: cast is a copy. At "cast": p 40 + c 20 = 60 (x died after softmax).
    EXPECT_EQ(build(AliasRule::None, true), 60u);
    // bf16 softmax, cast returns p itself, which lives on to "use": p 20 + o 20 = 40; x 20 + p 20 = 40.
    EXPECT_EQ(build(AliasRule::View, false), 40u);
}

// An empty cache keeps the new K tensor itself (no copy); a filled one concatenates.
TEST(OpGraph, FreshCacheAliasDependsOnThePoint) {
    OpGraph g("cache", bf16_dtypes(), 1);
    int old = g.input(TensorInfo{"k_old", Size(8, {Sym::SkvOld}), DtypeRole::Kv, Category::KvCache});
    int k = g.op1(op("k_proj", OpKind::Matmul), {}, t("k", Size(8, {Sym::Sq})));
    g.op1(op("update", OpKind::Copy), {k, old},
          TensorInfo{"k_cache", Size(8, {Sym::SkvNew}), DtypeRole::Kv, Category::KvCache, Lifetime::Persistent, AliasRule::IfFreshCache});
    g.finalize();
    Bindings prefill;
    prefill[Sym::Sq] = prefill[Sym::SkvNew] = 4;
    // k (64 B) is the cache: nothing is copied, and it is what the graph leaves behind.
    GraphEval p = g.evaluate(prefill);
    EXPECT_EQ(p.peak_bytes, 64u);
    EXPECT_EQ(p.kv_written, 64u);
    Bindings decode;
    decode[Sym::Sq] = 1;
    decode[Sym::SkvOld] = 4;
    decode[Sym::SkvNew] = 5;
    // old 64 + k 16 + new 80 at the update.
    GraphEval d = g.evaluate(decode);
    EXPECT_EQ(d.peak_bytes, 160u);
    EXPECT_EQ(d.kv_written, 80u);
    EXPECT_EQ(d.preexisting_kv, 64u);
    EXPECT_EQ(g.cache_bytes(decode), 80u);
}

TEST(OpGraph, AllocatorRoundingAppliesToEveryTensor) {
    OpGraph g("round", bf16_dtypes(), 512);
    int x = g.input(t("x", Size(1, {})));        // 2 B -> 512
    g.op1(op("y"), {x}, t("y", Size(300, {})));  // 600 B -> 1024
    g.finalize();
    EXPECT_EQ(g.evaluate(Bindings{}).peak_bytes, 1536u);
    // Traffic and cache sizes are the bytes moved, unrounded.
    EXPECT_EQ(g.tensor_bytes(1, Bindings{}), 600u);
}

TEST(OpGraph, WeightsAreReadOffTheOps) {
    OpGraph g("w", bf16_dtypes(), 1);
    int x = g.input(t("x", Size(4, {Sym::Batch})));
    OpInfo proj{"proj", OpKind::Matmul, OpGroup::Projection, Size(2 * 4 * 3, {Sym::Batch}), {}, {}};
    proj.weights = {{"w", 12, DtypeRole::Weight}, {"bias", 3, DtypeRole::Act}, {"tied", 100, DtypeRole::Act, true}};
    g.op1(proj, {x}, t("y", Size(3, {Sym::Batch})));
    g.finalize();
    // A shared weight is read (traffic) but stored elsewhere.
    EXPECT_EQ(g.weight_bytes(), 2u * 15);
    EXPECT_EQ(g.weight_elements(), 15u);
    Bindings b;
    b[Sym::Batch] = 2;
    auto tr = g.traffic(b);
    ASSERT_EQ(tr.size(), 1u);
    EXPECT_EQ(tr[0].flops, 48u);
    EXPECT_EQ(tr[0].weight_bytes, 2u * 115);
    EXPECT_EQ(tr[0].bytes, 2u * 115 + 16 + 12);
}

TEST(OpGraph, SizesAreProductsOfPowers) {
    const Size s(7, {Sym::Batch, Sym::Sq, Sym::Skv, Sym::Sq});
    auto p = s.powers();
    EXPECT_EQ(p[static_cast<size_t>(Sym::Batch)], 1);
    EXPECT_EQ(p[static_cast<size_t>(Sym::Sq)], 2);
    EXPECT_EQ(p[static_cast<size_t>(Sym::Skv)], 1);
    EXPECT_EQ(p[static_cast<size_t>(Sym::Kept)], 0);
}

// Evaluation never throws: an overflow is a flag naming the tensor.
TEST(OpGraph, OverflowIsAStatusNamingTheTensor) {
    OpGraph g("big", bf16_dtypes(), 1);
    int x = g.input(t("x", Size(1, {})));
    g.op1(op("scores"), {x}, t("scores", Size(1ull << 40, {Sym::Batch, Sym::Sq})));
    g.finalize();
    Bindings b;
    b[Sym::Batch] = 1ull << 20;
    b[Sym::Sq] = 1ull << 10;
    GraphEval r = g.evaluate(b);
    EXPECT_TRUE(r.overflow);
    EXPECT_EQ(g.item_name(r.overflow_tensor), "big.scores");
}

TEST(OpGraph, ScheduleMustRespectEveryEdge) {
    OpGraph g("bad", bf16_dtypes(), 1);
    int x = g.input(t("x", Size(1, {})));
    g.op1(op("a"), {x, 5}, t("a", Size(1, {})));  // reads a tensor that does not exist yet
    EXPECT_THROW(g.finalize(), InternalError);
}
