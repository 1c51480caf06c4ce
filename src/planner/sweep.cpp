#include "planner/sweep.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <functional>

#include "core/number.hpp"

namespace memtax {

std::vector<u64> parse_context_range(const std::string& text) {
    auto tokens = [&](const std::string& t) {
        u64 v = 0;
        const NumberParse p = parse_token_count(t, v);
        if (p != NumberParse::Ok || v == 0)
            throw InputError(SourcePos{}, "sweep.contexts", number_problem(p == NumberParse::Ok ? NumberParse::Invalid : p, t, true));
        return v;
    };
    std::vector<u64> out;
    if (const size_t dots = text.find(".."); dots != std::string::npos) {
        const u64 lo = tokens(text.substr(0, dots)), hi = tokens(text.substr(dots + 2));
        if (lo > hi) throw InputError(SourcePos{}, "sweep.contexts", fmt::format("\"{}\": the first bound exceeds the second", text));
        for (u64 c = lo; c <= hi; c *= 2) {
            out.push_back(c);
            if (c > hi / 2) break;
        }
        return out;
    }
    size_t at = 0;
    while (at <= text.size()) {
        const size_t comma = std::min(text.find(',', at), text.size());
        out.push_back(tokens(text.substr(at, comma - at)));
        at = comma + 1;
    }
    return out;
}

namespace {
// The point's result; a point that is not Ok throws the full estimate's named error.
PointResult checked(const Plan& plan, const Point& p) {
    PointResult r = plan.evaluate(p);
    if (r.status != PointStatus::Ok) (void)plan.estimate(p);
    return r;
}
}  // namespace

SweepReport run_sweep(const SweepSpec& s, const std::function<void(u64, u64)>& progress,
                      const std::function<void(const SweepPoint&)>& each) {
    SweepReport rep;
    rep.model = s.model.name;
    rep.gpu = s.gpu.name;
    rep.runtime = s.workload.runtime.name;
    rep.mode = s.workload.mode;
    const u64 total = s.contexts.size() * s.batches.size() * s.tps.size();
    u64 done = 0;
    rep.fit_batch = s.batches.front();
    rep.fit_tp = s.tps.front();
    std::vector<Plan> plans;
    for (u64 tp : s.tps) {
        Workload wl = s.workload;
        wl.context = s.contexts.front();
        plans.push_back(Plan::compile(s.model, s.gpu, Deployment{tp * s.pp * (s.ep > tp ? s.replicas : 1), tp, s.pp, s.ep}, wl));
        // Bytes grow with batch and context, so a point that overflows has a larger corner that
        // does; the context limit does not depend on the batch. These bound every point.
        const Plan& plan = plans.back();
        const u64 bmax = *std::max_element(s.batches.begin(), s.batches.end());
        for (u64 c : s.contexts) (void)checked(plan, Point{s.workload.mode, bmax, c});
        const u64 cmax = *std::max_element(s.contexts.begin(), s.contexts.end());
        for (u64 b : s.batches) (void)checked(plan, Point{s.workload.mode, b, cmax});
    }
    std::vector<SweepPoint> series;  // the fitted one: the first batch and TP
    for (size_t t = 0; t < s.tps.size(); ++t)
        for (u64 b : s.batches)
            for (u64 c : s.contexts) {
                const Point p{s.workload.mode, b, c};
                const SweepPoint sp{c, b, s.tps[t], checked(plans[t], p)};
                if (b == rep.fit_batch && t == 0) series.push_back(sp);
                if (each)
                    each(sp);
                else
                    rep.points.push_back(sp);
                if (progress) progress(++done, total);
            }
    // Least squares per component over the first series (batch, TP), columns scaled to 1k tokens
    // so s² stays well conditioned up to millions of tokens.
    if (series.size() < 3) return rep;
    const auto n = static_cast<Eigen::Index>(series.size());
    Eigen::MatrixXd A(n, 3);
    for (Eigen::Index i = 0; i < n; ++i) {
        const double k = static_cast<double>(series[static_cast<size_t>(i)].context) / 1024.0;
        A(i, 0) = k * k;
        A(i, 1) = k;
        A(i, 2) = 1.0;
    }
    const auto qr = A.colPivHouseholderQr();
    const std::pair<const char*, u64 PointResult::*> comps[] = {{"weights", &PointResult::weights},
                                                                {"kv_cache", &PointResult::kv_cache},
                                                                {"attention_matrix", &PointResult::attention_matrix},
                                                                {"activations", &PointResult::activation_peak},
                                                                {"logits", &PointResult::logits},
                                                                {"total", &PointResult::total}};
    for (const auto& [name, member] : comps) {
        Eigen::VectorXd y(n);
        for (Eigen::Index i = 0; i < n; ++i) y(i) = static_cast<double>(series[static_cast<size_t>(i)].r.*member);
        const Eigen::Vector3d x = qr.solve(y);
        GrowthFit f;
        f.component = name;
        // Terms below 1e-9 of the largest value over the series are rounding noise of the solve.
        const double scale = y.cwiseAbs().maxCoeff(), kmax = A(n - 1, 1);
        auto clean = [&](double coef, double at_max) { return std::fabs(coef * at_max) < 1e-9 * scale ? 0.0 : coef; };
        f.c2 = clean(x(0), kmax * kmax) / (1024.0 * 1024.0);
        f.c1 = clean(x(1), kmax) / 1024.0;
        f.c0 = clean(x(2), 1.0);
        // Per doubling at the largest context: the last two points when they are a doubling,
        // otherwise the fitted polynomial at the largest context and half of it (a 1k, 3k, 10k
        // series must not report 10k/3k as a doubling).
        double last = y(n - 1), prev = y(n - 2);
        const u64 c_last = series[static_cast<size_t>(n - 1)].context, c_prev = series[static_cast<size_t>(n - 2)].context;
        if (c_last != 2 * c_prev) {
            const double k = static_cast<double>(c_last) / 1024.0;
            last = x(0) * k * k + x(1) * k + x(2);
            prev = x(0) * k * k / 4 + x(1) * k / 2 + x(2);
            if (std::fabs(last - prev) < 1e-9 * scale) last = prev;  // solver noise on a constant
        }
        f.per_doubling = prev > 0 ? last / prev : (last > 0 ? INFINITY : 1.0);
        const Eigen::VectorXd res = A * x - y;
        for (Eigen::Index i = 0; i < n; ++i)
            if (y(i) > 0) f.max_relative_residual = std::max(f.max_relative_residual, std::fabs(res(i)) / y(i));
        rep.fits.push_back(f);
    }
    return rep;
}

}  // namespace memtax
