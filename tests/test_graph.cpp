// Op-graph liveness, checked on graphs small enough to derive by hand.
#include <gtest/gtest.h>

#include "graph/layer_graphs.hpp"

using namespace memtax;

namespace {

Bindings bf16_bindings() {
    Bindings b;
    for (auto& d : b.dim) d = 1;
    DType bf16, fp32;
    parse_dtype("bf16", bf16);
    parse_dtype("fp32", fp32);
    b[DtypeRole::Act] = bf16;
    b[DtypeRole::Kv] = bf16;
    b[DtypeRole::Logits] = bf16;
    b[DtypeRole::Softmax] = fp32;
    b[DtypeRole::Fp32] = fp32;
    b[DtypeRole::Index] = DType{"int64", 64, 0, 0};
    b[DtypeRole::Bool] = DType{"bool", 8, 0, 0};
    b[DtypeRole::Mask] = bf16;
    // Prefill into an empty cache, no mask conversion, no K/V repeat for the fused kernel.
    b[Dim::SkvOld] = 0;
    b[Dim::MaskConvElems] = 0;
    b[Dim::RepHeads] = 0;
    return b;
}

// The transformers layer graph as hf-eager / hf-sdpa describe it.
GraphConfig cfg(AttentionKernel k) {
    GraphConfig c;
    c.kernel = k;
    c.keeps = KeepsAlive{true, true, true, k == AttentionKernel::Eager, true, true};
    return c;
}

}  // namespace

// x(8) -> a(16) -> b(4); c = f(x, b)(8). With Hidden = 4 bf16 elements = 8 bytes:
//   op1: x + a = 8 + 16 = 24; op2: x + a + b = 28 (a dies); op3: x + b + c = 20.
TEST(OpGraph, LivenessPeakByHand) {
    OpGraph g("toy");
    TensorInfo t{"x", {Dim::Hidden}, DtypeRole::Act};
    int x = g.input(t);
    int a = g.op1({"up", OpKind::Matmul, {}}, {x}, TensorInfo{"a", {Dim::Hidden, Dim::Batch}, DtypeRole::Act});
    int b = g.op1({"down", OpKind::Matmul, {}}, {a}, TensorInfo{"b", {Dim::Batch}, DtypeRole::Act});
    g.op1({"mix", OpKind::Elementwise, {}}, {x, b}, TensorInfo{"c", {Dim::Hidden}, DtypeRole::Act, Category::Activation, Lifetime::Persistent});
    g.finalize();
    Bindings bind = bf16_bindings();
    bind[Dim::Hidden] = 4;
    bind[Dim::Batch] = 2;
    GraphEval r = g.evaluate(bind);
    EXPECT_EQ(r.preexisting, 8u);
    EXPECT_EQ(r.peak_bytes, 28u);
    EXPECT_EQ(r.peak_op, "down");
    EXPECT_EQ(r.persistent_other, 8u);
}

TEST(OpGraph, WorkspaceAndHoldsExtendLiveness) {
    OpGraph g("toy");
    int x = g.input(TensorInfo{"x", {Dim::Hidden}, DtypeRole::Act});
    int a = g.op1({"a", OpKind::Elementwise, {{{Dim::Hidden}, DtypeRole::Fp32}}}, {x},
                  TensorInfo{"a", {Dim::Hidden}, DtypeRole::Act});
    // b does not read x, but holds it: x stays alive through op b.
    g.op1({"b", OpKind::Elementwise, {}}, {a}, TensorInfo{"b", {Dim::Hidden}, DtypeRole::Act}, {x});
    g.finalize();
    Bindings bind = bf16_bindings();
    bind[Dim::Hidden] = 10;
    GraphEval r = g.evaluate(bind);
    // op a: x 20 + a 20 + fp32 workspace 40 = 80; op b: x 20 + a 20 + b 20 = 60.
    EXPECT_EQ(r.peak_bytes, 80u);
    EXPECT_EQ(r.peak_op, "a");
}

TEST(OpGraph, ActiveAliasCostsNothing) {
    OpGraph g("toy");
    int x = g.input(TensorInfo{"x", {Dim::Hidden}, DtypeRole::Act});
    int p = g.op1({"softmax", OpKind::Softmax, {}}, {x}, TensorInfo{"p", {Dim::Hidden}, DtypeRole::Softmax});
    int c = g.op1({"cast", OpKind::Copy, {}}, {p},
                  TensorInfo{"c", {Dim::Hidden}, DtypeRole::Act, Category::Activation, Lifetime::Transient, AliasRule::IfSoftmaxIsAct});
    g.op1({"use", OpKind::Elementwise, {}}, {c}, TensorInfo{"o", {Dim::Hidden}, DtypeRole::Act});
    g.finalize();
    Bindings bind = bf16_bindings();
    bind[Dim::Hidden] = 10;
    // fp32 softmax: cast is a copy. At "cast": p 40 + c 20 = 60 (x died after softmax).
    EXPECT_EQ(g.evaluate(bind).peak_bytes, 60u);
    // bf16 softmax: cast returns p itself, which lives on to "use": p 20 + o 20 = 40; x 20 + p 20 = 40.
    bind[DtypeRole::Softmax] = bind[DtypeRole::Act];
    EXPECT_EQ(g.evaluate(bind).peak_bytes, 40u);
}

// Eager attention holds, at its softmax, the masked bf16 scores (2 B), the fp32 copy that
// softmax(dtype=fp32) makes of a bf16 input (4 B) and the fp32 probabilities (4 B): 10 bytes
// per score element. With batch 1, 2 heads, S = 4: 32 elements -> 320 bytes.
TEST(LayerGraphs, EagerScoresBytesPerElement) {
    Bindings b = bf16_bindings();
    b[Dim::Batch] = 1;
    b[Dim::Sq] = 4;
    b[Dim::Skv] = 4;
    b[Dim::HeadsQ] = 2;
    b[Dim::HeadsKv] = 2;
    GraphEval e = decoder_layer_graph(cfg(AttentionKernel::Eager)).evaluate(b);
    EXPECT_EQ(e.attention_matrix_max, 32u * (2 + 4 + 4));
    EXPECT_EQ(e.peak_op, "softmax");
    // fp16 takes ATen's fused half-to-float softmax: no input copy, so the peak S×S bytes are
    // masked (2) + fp32 probs (4), then at the cast masked (2) + fp32 (4) + fp16 (2) = 8.
    parse_dtype("fp16", b[DtypeRole::Act]);
    GraphEval h = decoder_layer_graph(cfg(AttentionKernel::Eager)).evaluate(b);
    EXPECT_EQ(h.attention_matrix_max, 32u * 8);
    GraphEval f = decoder_layer_graph(cfg(AttentionKernel::Fused)).evaluate(b);
    EXPECT_EQ(f.attention_matrix_max, 0u);
}

TEST(LayerGraphs, GraphsAreBuiltOnce) {
    EXPECT_EQ(&decoder_layer_graph(cfg(AttentionKernel::Eager)), &decoder_layer_graph(cfg(AttentionKernel::Eager)));
    EXPECT_NE(&decoder_layer_graph(cfg(AttentionKernel::Eager)), &decoder_layer_graph(cfg(AttentionKernel::Fused)));
}
