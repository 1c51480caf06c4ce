#include "runtimes/serving.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <limits>
#include <random>

namespace memtax {

double LengthSpread::expected_max(double n) const {
    // The largest of n uniform draws sits at n/(n+1) of the range on average.
    if (n <= 1) return mean();
    return quantile(n / (n + 1.0));
}

LengthSpread spread_of(u64 mean, u64 max) {
    mean = std::max<u64>(mean, 1);
    max = std::max(max, mean);
    const u64 lo = 2 * mean > max ? std::max<u64>(2 * mean - max, 1) : 1;
    return LengthSpread{lo, 2 * mean - lo};  // symmetric about the mean, so the mean holds
}

double StepCostTable::decode_s(double d) const {
    if (decode.empty()) return 0;
    d = std::max(d, 1.0);
    if (decode.size() == 1 || d <= static_cast<double>(decode.front().first)) return decode.front().second;
    for (size_t i = 1; i < decode.size(); ++i) {
        const auto [d1, t1] = decode[i];
        if (d <= static_cast<double>(d1) || i + 1 == decode.size()) {
            const auto [d0, t0] = decode[i - 1];
            const double slope = (t1 - t0) / (static_cast<double>(d1) - static_cast<double>(d0));
            return t0 + slope * (d - static_cast<double>(d0));
        }
    }
    return decode.back().second;
}

double StepCostTable::step_s(double d, double q) const {
    if (d <= 0 && q <= 0) return 0;
    return std::max(decode_s(d), (d + q) * per_token_s);
}

namespace {

constexpr size_t kGrid = 16;  // prompt-length quantiles the closed form averages over

std::array<double, kGrid> grid_of(const LengthSpread& s) {
    std::array<double, kGrid> g{};
    for (size_t i = 0; i < kGrid; ++i) g[i] = s.quantile((static_cast<double>(i) + 0.5) / kGrid);
    return g;
}

// The distribution of TTFT the closed form gives: each of `base` (equally likely, quantiles of
// what it is made of) plus, with probability `wait_p`, an exponential admission wait of mean
// `wait_mean`. `mean` is the exact mean (the grid of `base` only approximates it).
struct TtftDistribution {
    std::vector<double> base;
    double wait_p = 0, wait_mean = 0, mean = 0;
    double cdf(double t) const {
        double sum = 0;
        for (double a : base)
            if (t >= a) sum += waits() ? 1.0 - wait_p * std::exp(-(t - a) / wait_mean) : 1.0;
        return sum / static_cast<double>(base.size());
    }
    bool waits() const { return wait_p > 1e-9 && wait_mean > 0; }
    // `base` sorted.
    double quantile(double p) const {
        const std::vector<double>& v = base;
        if (!waits()) {
            // The samples stand at the midpoints (i + 0.5)/n of the distribution: linear between.
            const double x = p * static_cast<double>(v.size()) - 0.5;
            if (x <= 0) return v.front();
            const auto i = static_cast<size_t>(x);
            if (i + 1 >= v.size()) return v.back();
            return v[i] + (v[i + 1] - v[i]) * (x - static_cast<double>(i));
        }
        double lo = v.front(), hi = v.back() + wait_mean * (std::max(0.0, std::log(wait_p / (1.0 - p))) + 1.0);
        for (int i = 0; i < 50; ++i) {
            const double mid = 0.5 * (lo + hi);
            (cdf(mid) >= p ? hi : lo) = mid;
        }
        return hi;
    }
};

void fill_ttft(ServingResult& r, TtftDistribution t, const ServingSlo& slo) {
    std::sort(t.base.begin(), t.base.end());
    r.ttft_mean_s = t.mean;
    r.ttft_p50_s = t.quantile(0.50);
    r.ttft_p90_s = t.quantile(0.90);
    r.ttft_p99_s = t.quantile(0.99);
    r.slo_attained = 1;
    if (slo.ttft_s) r.slo_attained *= t.cdf(*slo.ttft_s);
    if (slo.tpot_s && r.tpot_mean_s > *slo.tpot_s) r.slo_attained = 0;
}

// Erlang's C formula: the probability that an arrival waits, with `servers` servers offered
// `a` erlangs (a < servers), by the recursion on the Erlang B formula (stable for thousands).
double erlang_c(u64 servers, double a) {
    double b = 1;
    for (u64 k = 1; k <= servers; ++k) b = a * b / (static_cast<double>(k) + a * b);
    const double rho = a / static_cast<double>(servers);
    return b / (1.0 - rho + rho * b);
}

// The probability that an M-server queue offered `a` erlangs (a < M) is empty: 1 / (Σ_{k<M}
// a^k/k! + a^M / (M!·(1 − a/M))), summed in logarithms (a^k/k! passes a double's range by a ≈ 700).
double idle_probability(u64 servers, double a) {
    if (a <= 0) return 1;
    const double M = static_cast<double>(servers), la = std::log(a);
    // log Σ by a running maximum; log(a^k/k!) = log(a^(k−1)/(k−1)!) + log a − log k.
    double top = 0, sum = 1, term = 0;  // k = 0: log 1
    auto add = [&](double x) {
        if (x > top) {
            sum = sum * std::exp(top - x) + 1;
            top = x;
        } else {
            sum += std::exp(x - top);
        }
    };
    for (u64 k = 1; k < servers; ++k) add(term += la - std::log(static_cast<double>(k)));
    add(M * la - std::lgamma(M + 1) - std::log1p(-a / M));
    return std::exp(-(top + std::log(sum)));
}

// E[1/(O−1)] over the outputs of two tokens or more (a request's TPOT spreads what delays its
// decode over its O−1 steps), by harmonic numbers: H(n) ≈ ln n + γ + 1/(2n) − 1/(12n²).
double mean_inverse_steps(const LengthSpread& o) {
    const u64 lo = std::max<u64>(o.lo, 2);
    if (o.hi < lo) return 0;
    auto H = [](double n) {
        return n <= 0 ? 0.0 : n < 8 ? [n] { double h = 0; for (int i = 1; i <= static_cast<int>(n); ++i) h += 1.0 / i; return h; }() : std::log(n) + 0.5772156649015329 + 1 / (2 * n) - 1 / (12 * n * n);
    };
    return (H(static_cast<double>(o.hi - 1)) - H(static_cast<double>(lo - 2))) / static_cast<double>(o.hi - lo + 1);
}

// The prompt tokens a step of continuous batching has room for beside d decodes (the token
// budget, step_tokens, takes the decodes first); 0 when the runtime sets no budget.
double step_budget(const Scheduler& sch, double d) {
    return sch.step_tokens ? std::max(static_cast<double>(sch.step_tokens) - d, 1.0) : 0.0;
}

// Continuous batching with chunked prefill under Poisson arrivals, in steady state (a closed
// loop is continuous_closed's, below).
//
// A step runs every running decode (d of them: D(d) seconds when it carries no prompt) and the
// prompt chunks its budget Q = step_tokens − d leaves. A prompt of P tokens takes k = ⌈P/Q⌉
// steps; the time they take beyond k decode-only steps is its excess e (nothing while its tokens
// leave the step memory-bound). The GPU's time is decode-only steps plus excess, so the mean
// step is s = D / (1 − X·e) at X prompts a second.
//
// TTFT: the decode-only step under way; the prompts ahead, a single-server queue of what each holds
// (its excess and its k − 1 full steps) with utilisation ρ = λ_o·E[hold], waiting
// (1 + c_s²)/2 · ρ/(1 − ρ) · E[hold] (Pollaczek–Khinchine); then its own k steps, whose last it
// shares, as far as the budget leaves room, with the prompts that arrived while it waited or ran
// its full steps, and half of those arriving beside it.
// TPOT: every step gives a running request one token and is lengthened by the other prompts'
// excess (λ a second); those that arrived while it waited for its first token fall in its
// decode too:
//   (O−1)·TPOT = (O−1)·D + λ·e·((O−1)·TPOT + TTFT) − (their excess shared with its prompt).
// X = λ, admission an M-server queue (Erlang C), each request holding its slot until it
// finishes.
namespace {

struct ContinuousState {
    double D = 0, e = 0, rho = 0, wait = 0, rest = 0, busy = 1, ttft = 0, tpot = 0, decode_time = 0, s = 0, d = 0, m = 0;
    double admit_p = 0, admit_mean = 0, own_mean = 0;
    std::array<double, kGrid> own{};
    bool saturated = false;
};

}  // namespace

ServingResult continuous_open(const Scheduler& sch, const ServingLoad& L, const StepCostTable& c, const ServingSlo& slo) {
    ServingResult r;
    r.method = "steady state";
    const double Om = L.output.mean(), Pm = L.prompt.mean();
    const double inv = mean_inverse_steps(L.output);
    const double p2 = L.output.hi < 2 ? 0.0
                                      : static_cast<double>(L.output.hi - std::max<u64>(L.output.lo, 2) + 1) /
                                            static_cast<double>(L.output.hi - L.output.lo + 1);  // outputs of 2 tokens or more
    const auto P = grid_of(L.prompt);
    const double M = static_cast<double>(std::max<u64>(L.max_running, 1));
    // One prompt's steps beside d decodes, with `behind` tokens of other prompts sharing its last
    // step (at most what the budget leaves): the time and the number of steps.
    auto own = [&](double p, double d, double behind) -> std::pair<double, double> {
        const double Q = step_budget(sch, d);
        if (Q == 0) return {c.step_s(d, p + behind), 1.0};
        const double full = std::max(std::ceil(p / Q) - 1.0, 0.0), last = p - full * Q;
        return {full * c.step_s(d, Q) + c.step_s(d, std::min(Q, last + behind)), full + 1.0};
    };
    // Everything at a throughput of X requests a second, the decodes d and prompts m a step
    // found by fixed point.
    auto at = [&](double X) {
        ContinuousState st;
        st.d = X * (Om - 1) * c.decode_s(1);
        for (int it = 0; it < 60; ++it) {
            st.D = c.decode_s(std::max(st.d, 1.0));
            const double d_o = st.d;  // the decodes beside a prompt of this request
            const double lam_o = X;
            const double Q = step_budget(sch, d_o);
            double hold = 0, hold2 = 0, shared = 0;
            st.e = 0;
            std::array<double, kGrid> alone{}, fulls{};  // alone: its steps with no prompt beside it; fulls: its k − 1 full steps
            for (size_t i = 0; i < kGrid; ++i) {
                const auto [t, k] = own(P[i], d_o, 0);
                const double ex = std::max(t - k * st.D, 0.0), h = ex + (k - 1) * st.D;
                alone[i] = t;
                fulls[i] = k - 1;
                st.e += ex;
                hold += h;
                hold2 += h * h;
            }
            st.e /= kGrid;
            hold /= kGrid;
            hold2 /= kGrid;
            st.rho = lam_o * hold;
            if (st.rho >= 1 || X * st.e >= 1) {
                st.saturated = true;
                return st;
            }
            const double cs2 = hold > 0 ? hold2 / (hold * hold) - 1 : 0;
            // Poisson arrivals queue for the budget (Pollaczek–Khinchine).
            st.wait = (1 + cs2) / 2 * st.rho / (1 - st.rho) * hold;
            st.own_mean = 0;
            for (size_t i = 0; i < kGrid; ++i) {
                // Behind it in its last step, as far as the budget leaves room: the prompts
                // queued after it (λ_o·wait, by Little) and those arriving beside it (half a step's).
                const double room = Q > 0 ? std::max(Q - (P[i] - fulls[i] * Q), 0.0) : 1e300;
                const double before = st.wait + fulls[i] * c.step_s(d_o, Q);  // queued or in its full steps
                const double behind = std::min(room, (lam_o * before + st.m / 2.0) * Pm);
                st.own[i] = own(P[i], d_o, behind).first;
                st.own_mean += st.own[i];
                shared += st.own[i] - alone[i];
            }
            st.own_mean /= kGrid;
            shared /= kGrid;
            const double offered = X * (st.own_mean + st.wait + st.decode_time);
            if (offered >= M) {
                st.saturated = true;
                return st;
            }
            st.busy = 1.0 - idle_probability(static_cast<u64>(M), offered);
            st.rest = st.busy * (1 - X * st.e) * st.D / 2;  // a decode-only step under way: half of it left
            st.admit_p = erlang_c(static_cast<u64>(M), offered);
            st.admit_mean = (offered / X) / (M - offered);
            st.ttft = st.rest + st.wait + st.own_mean + st.admit_p * st.admit_mean;
            const double pushed = std::max(lam_o * st.e * st.ttft - shared, 0.0);
            st.tpot = (st.D + pushed * inv) / (1 - lam_o * st.e);
            st.decode_time = ((Om - 1) * st.D + p2 * pushed) / (1 - lam_o * st.e);
            st.s = st.D / (1 - X * st.e);
            const double d_new = X * st.decode_time, m_new = X * st.s;
            const bool done =
                it > 3 && std::abs(d_new - st.d) <= 1e-7 * std::max(d_new, 1.0) && std::abs(m_new - st.m) <= 1e-7 * std::max(m_new, 1.0);
            st.d = 0.5 * (st.d + d_new);
            st.m = 0.5 * (st.m + m_new);
            if (done) break;
        }
        if (sch.step_tokens && st.m * Pm > step_budget(sch, st.d)) st.saturated = true;
        return st;
    };
    const double X = L.rate_per_s;
    const ContinuousState st = at(X);
    if (st.saturated) {
        r.stable = false;
        r.unstable_reason = fmt::format(
            "{:g} requests/s of {:.0f}-token prompts and {:.0f}-token outputs are more than one replica "
            "serves ({} at once, {} tokens a step)",
            X, Pm, Om, L.max_running, sch.step_tokens);
        return r;
    }
    r.step_mean_s = st.s;
    r.tpot_mean_s = r.tpot_p90_s = st.tpot;
    r.itl_mean_s = Om > 1 ? st.decode_time / (Om - 1) : st.tpot;
    TtftDistribution t;
    t.mean = st.ttft;
    // Waits: the prompts ahead (with probability ρ, then exponential) and admission.
    t.wait_p = 1 - (1 - std::min(st.rho, 1.0)) * (1 - st.admit_p);
    t.wait_mean = t.wait_p > 0 ? (st.wait + st.admit_p * st.admit_mean) / t.wait_p : 0;
    const double in_decode_step = st.busy * (1 - X * st.e);
    for (size_t i = 0; i < kGrid; ++i)
        for (size_t j = 0; j < 8; ++j) {
            // The decode-only step under way: uniform over it when the GPU is busy with one.
            const double u = (static_cast<double>(j) + 0.5) / 8.0;
            t.base.push_back(st.own[i] + (u < in_decode_step ? st.D * (u / in_decode_step) : 0.0));
        }
    r.requests_per_s = X;
    r.running_mean = X * (st.ttft - st.rest - st.admit_p * st.admit_mean + st.decode_time);  // admitted to finished
    r.waiting_mean = X * st.admit_p * st.admit_mean;
    r.tokens_per_s = X * Om;
    fill_ttft(r, std::move(t), slo);
    return r;
}

// Four-point Gauss–Hermite nodes and weights for a standard normal (E[f(Z)] ≈ Σ w·f(z)): the
// roots of He₄(z) = z⁴ − 6z² + 3, z = ±√(3 ± √6), with weights (3 ∓ √6)/12.
constexpr std::array<std::pair<double, double>, 4> kHermite = {{{-2.3344142183389773, 0.045875854768068491},
                                                                {-0.74196378430272586, 0.45412414523193151},
                                                                {0.74196378430272586, 0.45412414523193151},
                                                                {2.3344142183389773, 0.045875854768068491}}};

// Continuous batching under a closed loop, step by step. Every running request advances one step
// each step, so in steady state a request's stay is counted in steps: k steps to its first token
// and O − 1 decode steps. By Little's law over steps, each step completes m = N / (k̄ + Ō − 1) of
// the N running requests, d = N − m·k̄ of them decode, and the users of the m completions ask again
// as the step ends: their prompts are the next step's. How many complete in one step: Poisson(m)
// when lengths vary; a load of identical requests keeps its users staggered, ⌊m⌋ or ⌈m⌉ a step.
// A step with K new prompts of T tokens takes ⌈T / Q⌉ steps at Q = step_tokens − d, each
// max(D(d), (d + q)·c), beside the d = N − K requests decoding; the mean step s is their time over
// their number, ITL (and TPOT) weighs each step by the requests decoding in it. A request's TTFT
// is the steps until its own prompt is done, beside the K* − 1 others that asked with it (K*
// size-biased), half of them ahead of it, plus what is left of a group still running.
// Throughput by Little's law over a request's stay: X = N / (TTFT + (Ō − 1)·ITL).
ServingResult continuous_closed(const Scheduler& sch, const ServingLoad& L, const StepCostTable& c, const ServingSlo& slo) {
    ServingResult r;
    r.method = "steady state";
    const double Om = L.output.mean(), Pm = L.prompt.mean();
    const double U = static_cast<double>(L.users), N = std::min(U, static_cast<double>(std::max<u64>(L.max_running, 1)));
    const bool fixed = L.output.lo == L.output.hi && L.prompt.lo == L.prompt.hi;
    const auto P = grid_of(L.prompt);
    const double width = static_cast<double>(L.prompt.hi - L.prompt.lo) + 1, sd = std::sqrt((width * width - 1) / 12);
    // The distribution of K (completions in a step, mean m): probabilities of 0..kmax.
    auto completions = [&](double m, std::vector<double>& pk) {
        pk.clear();
        if (fixed) {
            const double lo = std::floor(m), f = m - lo;
            pk.assign(static_cast<size_t>(lo) + 2, 0.0);
            pk[static_cast<size_t>(lo)] += 1 - f;
            pk[static_cast<size_t>(lo) + 1] += f;
            return;
        }
        double term = std::exp(-m), cum = 0;
        for (size_t k = 0; k < 4096 && (cum < 1 - 1e-9 || static_cast<double>(k) < m); ++k) {
            pk.push_back(term);
            cum += term;
            term *= m / static_cast<double>(k + 1);
        }
    };
    double m = N / std::max(Om, 1.0), kbar = 1, s = 0, nbar = 1, backlog = 0, itl = 0;
    std::vector<double> pk, palm;
    // The steps (and their seconds) that `tokens` new prompt tokens take beside `dk` decodes.
    auto group = [&](double tokens, double dk, double& steps) {
        if (tokens <= 0) {
            steps = 1;
            return c.decode_s(std::max(dk, 1.0));
        }
        const double q = step_budget(sch, dk);
        steps = q > 0 ? std::max(std::ceil(tokens / q), 1.0) : 1.0;
        const double full = steps - 1;
        return full * c.step_s(dk, q) + c.step_s(dk, tokens - full * q);
    };
    for (int it = 0; it < 100; ++it) {
        const double Q = step_budget(sch, std::max(N - m * kbar, 0.0));  // beside the mean decodes
        // The mean step: K new prompts, their tokens processed over n = ⌈T/Q⌉ steps, while the
        // completions of those n steps (m each) become the next group's prompts: K has mean m·n̄.
        completions(m * nbar, pk);
        double time = 0, steps = 0, pairs = 0, decode_time = 0, decode_steps = 0;
        for (size_t k = 0; k < pk.size(); ++k)
            for (const auto& [z, w] : kHermite) {
                // The K prompts' tokens: their sum's mean and spread (uniform lengths), at the
                // four-point Gauss–Hermite nodes of a normal; while they are prefilled, the other
                // N − K requests decode.
                const double kd = static_cast<double>(k), tokens = std::max(kd * Pm + z * sd * std::sqrt(kd), kd);
                const double dk = std::max(N - kd, 0.0);
                double n = 0;
                const double t = group(tokens, dk, n);
                time += pk[k] * w * t;
                steps += pk[k] * w * n;
                pairs += pk[k] * w * (n - 1) * std::max(n - 2, 0.0) / 2;
                // A decoding request's time per token weighs each step by the requests decoding in it.
                decode_time += pk[k] * w * dk * t;
                decode_steps += pk[k] * w * dk * n;
            }
        itl = decode_steps > 0 ? decode_time / decode_steps : time / steps;
        // A request that asks while a group of n steps is still running waits for its remaining
        // full steps, and shares the group's last (partial) one: asking at the end of step j of n,
        // max(n − j − 1, 0) full steps; (n − 1)(n − 2)/2 over the group's n step ends.
        backlog = pairs / steps;
        s = time / steps;
        nbar = 0.5 * (nbar + steps);
        // k̄: steps from a request's arrival to its first token, beside the others that arrived
        // with it (K* − 1, size-biased), half of them ahead.
        palm.assign(pk.size(), 0.0);
        for (size_t k = 1; k < pk.size(); ++k) palm[k] = pk[k] * static_cast<double>(k) / std::max(m, 1e-12);
        double k_new = 0;
        for (size_t k = 1; k < palm.size(); ++k) {
            double own = 0;
            for (double p : P) own += Q > 0 ? std::max(std::ceil((p + static_cast<double>(k - 1) * Pm / 2) / Q), 1.0) : 1.0;
            k_new += palm[k] * own / static_cast<double>(kGrid);
        }
        const double m_new = N / (std::max(k_new, 1.0) + std::max(Om - 1, 0.0));
        const bool done = it > 3 && std::abs(m_new - m) <= 1e-9 * std::max(m, 1e-9) && std::abs(k_new - kbar) <= 1e-9;
        m = 0.5 * (m + m_new);
        kbar = 0.5 * (kbar + std::max(k_new, 1.0));
        if (done) break;
    }
    // TTFT samples: each prompt-length quantile beside each quantile of the others that asked with
    // it (K* − 1 of them, half ahead), while the other N − K* requests decode.
    TtftDistribution t;
    double mean = 0;
    for (size_t i = 0; i < kGrid; ++i)
        for (size_t j = 0; j < 8; ++j) {
            const double u = (static_cast<double>(j) + 0.5) / 8.0;
            double cum = 0;
            size_t k = 1;
            while (k + 1 < palm.size() && cum + palm[k] < u) cum += palm[k++];
            const double others = static_cast<double>(k - 1) * Pm, dk = std::max(N - static_cast<double>(k), 0.0);
            const double q = step_budget(sch, dk);
            // Its steps: full ones while the group's tokens up to its own end exceed a step's budget.
            const double own = P[i] + others / 2, n = q > 0 ? std::max(std::ceil(own / q), 1.0) : 1.0, full = n - 1;
            const double last = q > 0 ? std::min(q, P[i] + others - full * q) : P[i] + others;
            const double v = (full + backlog) * c.step_s(dk, q) + c.step_s(dk, std::max(last, 1.0));
            t.base.push_back(v);
            mean += v;
        }
    mean /= static_cast<double>(t.base.size());
    // Little's law over a request's stay: its first token, then Ō − 1 tokens at the token-weighted
    // time between tokens. Users beyond the running limit wait their turn, (U − N) / X.
    const double X = N / (mean + std::max(Om - 1, 0.0) * itl);
    const double wait_closed = (U - N) / X;
    for (double& v : t.base) v += wait_closed;
    t.mean = mean + wait_closed;
    r.step_mean_s = s;
    r.tpot_mean_s = r.tpot_p90_s = r.itl_mean_s = itl;
    r.requests_per_s = X;
    r.tokens_per_s = X * Om;
    r.running_mean = N;
    r.waiting_mean = U - N;
    fill_ttft(r, std::move(t), slo);
    return r;
}

// A static batch: up to max_running requests prefilled in one forward (padded to the longest
// prompt), then decoded together until the longest output; requests arriving meanwhile wait for
// the next batch.
ServingResult static_steady(const ServingLoad& L, const StepCostTable& c, const ServingSlo& slo) {
    ServingResult r;
    r.method = "steady state";
    const double M = static_cast<double>(std::max<u64>(L.max_running, 1)), Om = L.output.mean();
    auto cycle_of = [&](double b, double& prefill) {
        prefill = c.step_s(0, b * L.prompt.expected_max(b));
        return prefill + std::max(L.output.expected_max(b) - 1.0, 0.0) * c.decode_s(b);
    };
    TtftDistribution t;
    double b = 1, prefill = 0, cycle = 0;
    if (L.users > 0) {
        b = std::min(static_cast<double>(L.users), M);
        cycle = cycle_of(b, prefill);
        // The users take turns in groups of b: each waits for the groups before it.
        const double groups = std::ceil(static_cast<double>(L.users) / b);
        t.base = {prefill + (groups - 1) * cycle};
        t.mean = t.base.front();
        r.requests_per_s = static_cast<double>(L.users) / (groups * cycle);
        r.running_mean = b;
        r.waiting_mean = static_cast<double>(L.users) - b;
    } else {
        // A batch takes every request that arrived during the one before: b = λ·cycle(b).
        const double lambda = L.rate_per_s;
        for (int it = 0; it < 100; ++it) {
            cycle = cycle_of(b, prefill);
            const double next = std::max(1.0, lambda * cycle);
            if (next > M) {
                r.stable = false;
                r.unstable_reason = fmt::format("{:g} requests/s arrive faster than batches of at most {:g} are served", lambda, M);
                return r;
            }
            if (std::abs(next - b) < 1e-9) break;
            b = next;
        }
        cycle = cycle_of(b, prefill);
        // An arrival finds the server busy with probability λ·cycle/b (its utilisation) and then
        // waits for the rest of that batch, uniform over the cycle.
        const double busy = std::min(1.0, lambda * cycle / b);
        for (size_t j = 0; j < 16; ++j) {
            const double u = (static_cast<double>(j) + 0.5) / 16.0;
            t.base.push_back(prefill + (u < busy ? cycle * (u / busy) : 0.0));
        }
        t.mean = prefill + busy * cycle / 2.0;
        r.requests_per_s = lambda;
        r.running_mean = b;
    }
    r.step_mean_s = c.decode_s(b);
    r.tpot_mean_s = r.tpot_p90_s = r.itl_mean_s = c.decode_s(b);
    r.tokens_per_s = r.requests_per_s * Om;
    fill_ttft(r, std::move(t), slo);
    return r;
}

}  // namespace

ServingResult serve_steady(const Scheduler& sched, const ServingLoad& load, const StepCostTable& cost, const ServingSlo& slo) {
    if (!sched.continuous) return static_steady(load, cost, slo);
    return load.users > 0 ? continuous_closed(sched, load, cost, slo) : continuous_open(sched, load, cost, slo);
}

namespace {

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
}

struct SimRequest {
    double arrival = 0, first = 0;
    u64 prompt = 0, output = 0, prefilled = 0, generated = 0, take = 0;
};

}  // namespace

ServingResult serve_simulated(const Scheduler& sch, const ServingLoad& L, const StepCostTable& c, const ServingSlo& slo,
                              const SimulationOptions& opt) {
    ServingResult r;
    r.method = fmt::format("simulation of {} requests", opt.requests);
    std::mt19937_64 rng(opt.seed);
    auto draw = [&](const LengthSpread& s) { return s.lo == s.hi ? s.lo : std::uniform_int_distribution<u64>(s.lo, s.hi)(rng); };
    std::exponential_distribution<double> gap(L.rate_per_s > 0 ? L.rate_per_s : 1.0);
    const bool closed = L.users > 0;
    const u64 M = std::max<u64>(L.max_running, 1);
    const u64 warmup = opt.warmup ? opt.warmup : std::max<u64>(2 * L.users, 200);
    const double inf = std::numeric_limits<double>::infinity();

    std::deque<SimRequest> waiting;  // in arrival order
    std::vector<SimRequest> running;
    double next_arrival = inf;
    auto new_request = [&](double at) { waiting.push_back(SimRequest{at, 0, draw(L.prompt), std::max<u64>(draw(L.output), 1)}); };
    if (closed) {
        // Users start spread over one request's rough stay, as a server under load sees them.
        const double stay = L.output.mean() * c.decode_s(static_cast<double>(std::min(L.users, M))) + c.step_s(0, L.prompt.mean());
        for (u64 i = 0; i < L.users; ++i) new_request(stay * static_cast<double>(i) / static_cast<double>(L.users));
    } else {
        next_arrival = gap(rng);
    }
    std::vector<double> ttft, tpot;                // measured requests (tpot: those of two tokens or more)
    double decode_seconds = 0, decode_tokens = 0;  // after first tokens, over measured requests (ITL)
    std::vector<char> met;                         // each measured request met every SLO
    u64 completed = 0;
    double now = 0, window_start = -1, tokens = 0, running_area = 0, waiting_area = 0, steps_time = 0;
    u64 steps = 0;
    const size_t queue_limit = 20 * M + 2000;
    while (ttft.size() < opt.requests) {
        if (!closed)
            while (next_arrival <= now) {
                new_request(next_arrival);
                next_arrival += gap(rng);
            }
        if (waiting.size() > queue_limit) {
            r.stable = false;
            r.unstable_reason = fmt::format("the queue passed {} requests", queue_limit);
            return r;
        }
        // Schedule one step.
        double budget = sch.continuous && sch.step_tokens ? static_cast<double>(sch.step_tokens) : inf;
        u64 d = 0, q = 0;
        if (sch.continuous) {
            for (auto& x : running) {
                x.take = 0;
                if (budget < 1) continue;
                if (x.prefilled == x.prompt) {
                    x.take = 1;
                    ++d;
                } else {
                    x.take = static_cast<u64>(std::min(budget, static_cast<double>(x.prompt - x.prefilled)));
                    q += x.take;
                }
                budget -= static_cast<double>(x.take);
            }
            while (!waiting.empty() && waiting.front().arrival <= now && running.size() < M && budget >= 1) {
                SimRequest x = waiting.front();
                waiting.pop_front();
                x.take = static_cast<u64>(std::min(budget, static_cast<double>(x.prompt)));
                q += x.take;
                budget -= static_cast<double>(x.take);
                running.push_back(x);
            }
        } else if (running.empty()) {
            // A static batch forms from whatever waits, padded to its longest prompt.
            u64 longest = 0;
            while (!waiting.empty() && waiting.front().arrival <= now && running.size() < M) {
                SimRequest x = waiting.front();
                waiting.pop_front();
                x.take = x.prompt;
                longest = std::max(longest, x.prompt);
                running.push_back(x);
            }
            q = longest * running.size();
        } else {
            for (auto& x : running) x.take = x.generated < x.output ? 1 : 0;
            d = running.size();  // finished rows still run until the longest output ends
        }
        if (d == 0 && q == 0) {
            // Idle: jump to the next arrival.
            const double next = closed ? (waiting.empty() ? inf : waiting.front().arrival) : next_arrival;
            if (!std::isfinite(next)) break;
            now = std::max(now, next);
            continue;
        }
        const double tau = c.step_s(static_cast<double>(d), static_cast<double>(q));  // a static batch's prefill step has d = 0
        now += tau;
        if (window_start >= 0) {
            ++steps;
            running_area += static_cast<double>(running.size()) * tau;
            waiting_area += static_cast<double>(waiting.size()) * tau;
            steps_time += tau;
        }
        // The step's tokens: a finished prompt gives its first token.
        u64 produced = 0;
        for (auto& x : running) {
            if (x.take == 0) continue;
            if (x.prefilled < x.prompt) {
                x.prefilled += x.take;
                if (x.prefilled == x.prompt) {
                    x.first = now;
                    x.generated = 1;
                    ++produced;
                }
            } else if (x.generated < x.output) {
                ++x.generated;
                ++produced;
            }
        }
        if (window_start >= 0) tokens += static_cast<double>(produced);
        // Completions: continuous batching frees each at once; a static batch when all are done.
        const bool batch_done =
            sch.continuous || std::all_of(running.begin(), running.end(), [](const SimRequest& x) { return x.generated >= x.output; });
        if (!batch_done) continue;
        std::vector<SimRequest> still;
        for (auto& x : running) {
            if (x.prefilled == x.prompt && x.generated >= x.output) {
                ++completed;
                if (completed == warmup) window_start = now;
                if (completed > warmup) {
                    const double first = x.first - x.arrival;
                    const double per = x.output > 1 ? (now - x.first) / static_cast<double>(x.output - 1) : 0;
                    ttft.push_back(first);
                    if (x.output > 1) tpot.push_back(per);
                    decode_seconds += now - x.first;
                    decode_tokens += static_cast<double>(x.output - 1);
                    met.push_back((!slo.ttft_s || first <= *slo.ttft_s) && (!slo.tpot_s || per <= *slo.tpot_s));
                }
                if (closed) new_request(now);
            } else {
                still.push_back(x);
            }
        }
        running.swap(still);
    }
    const double window = now - window_start;
    r.ttft_mean_s = 0;
    for (double v : ttft) r.ttft_mean_s += v;
    r.ttft_mean_s /= static_cast<double>(std::max<size_t>(ttft.size(), 1));
    r.ttft_p50_s = percentile(ttft, 0.50);
    r.ttft_p90_s = percentile(ttft, 0.90);
    r.ttft_p99_s = percentile(ttft, 0.99);
    for (double v : tpot) r.tpot_mean_s += v;
    r.tpot_mean_s /= static_cast<double>(std::max<size_t>(tpot.size(), 1));
    r.tpot_p90_s = percentile(tpot, 0.90);
    r.itl_mean_s = decode_tokens > 0 ? decode_seconds / decode_tokens : r.tpot_mean_s;
    r.requests_per_s = window > 0 ? static_cast<double>(ttft.size()) / window : 0;
    r.tokens_per_s = window > 0 ? tokens / window : 0;
    r.running_mean = window > 0 ? running_area / window : 0;
    r.waiting_mean = window > 0 ? waiting_area / window : 0;
    r.step_mean_s = steps_time > 0 && steps ? steps_time / static_cast<double>(steps) : 0;
    // Requests meeting every SLO.
    if (!met.empty()) r.slo_attained = static_cast<double>(std::count(met.begin(), met.end(), 1)) / static_cast<double>(met.size());
    return r;
}

}  // namespace memtax
