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

// The distribution of TTFT the closed form gives: each of `base` (equally likely) plus, with
// probability `wait_p`, an exponential admission wait of mean `wait_mean`.
struct TtftDistribution {
    std::vector<double> base;
    double wait_p = 0, wait_mean = 0;
    double cdf(double t) const {
        double sum = 0;
        for (double a : base)
            if (t >= a) sum += wait_p > 0 && wait_mean > 0 ? 1.0 - wait_p * std::exp(-(t - a) / wait_mean) : (wait_p >= 1 ? 0.0 : 1.0);
        return sum / static_cast<double>(base.size());
    }
    double mean() const {
        double s = 0;
        for (double a : base) s += a;
        return s / static_cast<double>(base.size()) + wait_p * wait_mean;
    }
    double quantile(double p) const {
        double lo = *std::min_element(base.begin(), base.end()), hi = *std::max_element(base.begin(), base.end());
        if (wait_p > 0 && wait_mean > 0) hi += wait_mean * std::max(0.0, std::log(wait_p / (1.0 - p))) + wait_mean;
        for (int i = 0; i < 60; ++i) {
            const double mid = 0.5 * (lo + hi);
            (cdf(mid) >= p ? hi : lo) = mid;
        }
        return hi;
    }
};

void fill_ttft(ServingResult& r, const TtftDistribution& t, const ServingSlo& slo) {
    r.ttft_mean_s = t.mean();
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
    std::vector<double> logs;
    logs.reserve(servers + 1);
    for (u64 k = 0; k < servers; ++k) logs.push_back(static_cast<double>(k) * la - std::lgamma(static_cast<double>(k) + 1));
    logs.push_back(M * la - std::lgamma(M + 1) - std::log1p(-a / M));
    const double top = *std::max_element(logs.begin(), logs.end());
    double sum = 0;
    for (double x : logs) sum += std::exp(x - top);
    return std::exp(-(top + std::log(sum)));
}

// Continuous batching with chunked prefill, in steady state.
//
// A step runs every running decode (d of them, D(d) seconds when it carries no prompt) and the
// prompt chunks its budget Q = step_tokens − d leaves. A prompt of P tokens takes k = ⌈P/Q⌉
// steps; what they take beyond k decode-only steps is its excess e (nothing while its tokens
// leave the step memory-bound). Time splits into decode-only step time and excess:
// 1 = σ·D + X·e for σ steps a second and X prompts a second, so the mean step is
// s = 1/σ = D / (1 − X·e). A request in decode sees one token a step, and the excess of the
// other requests' prompts: TPOT = D / (1 − X_o·e), X_o = X (open loop: arrivals are others)
// or X·(N−1)/N (closed loop: N users, one of them itself). Its first token comes with its last
// prompt step, shared on average with the other prompts of that step (m_o = X_o·s a step, half
// ahead of it in the budget and half behind). Closed loop: X = N / (TTFT + (O−1)·TPOT), a
// quadratic in TPOT. Open loop: X = λ, admission an M-server queue (Erlang C) with each
// request holding a slot for TTFT + (O−1)·TPOT.
ServingResult continuous_steady(const Scheduler& sch, const ServingLoad& L, const StepCostTable& c, const ServingSlo& slo) {
    ServingResult r;
    r.method = "steady state";
    const double Om = L.output.mean(), Pm = L.prompt.mean(), a = std::max(Om - 1.0, 0.0);
    const auto P = grid_of(L.prompt);
    const double M = static_cast<double>(std::max<u64>(L.max_running, 1));
    const bool closed = L.users > 0;
    const double N = closed ? std::min(static_cast<double>(L.users), M) : 0;  // closed loop: admitted at once
    const double others = closed ? (N - 1) / N : 1.0;                          // of the prompts, another request's
    const double lambda = L.rate_per_s;
    auto budget = [&](double d) { return sch.step_tokens ? std::max(static_cast<double>(sch.step_tokens) - d, 1.0) : 0.0; };
    // One prompt's steps beside d decodes: `ahead` tokens of other prompts before it in the
    // budget, `behind` after it sharing its last step. Returns the time and the number of steps.
    auto own = [&](double p, double d, double ahead, double behind) -> std::pair<double, double> {
        const double Q = budget(d);
        if (Q == 0) return {c.step_s(d, ahead + p + behind), 1.0};
        const double before = ahead + p;
        const double full = std::max(std::ceil(before / Q) - 1.0, 0.0);
        const double last = before - full * Q;
        return {full * c.step_s(d, Q) + c.step_s(d, std::min(Q, last + behind)), full + 1.0};
    };
    double d = closed ? N * a / std::max(Om, 1.0) : lambda * a * c.decode_s(1), m = 0;
    double X = 0, s = 0, y = 0, e = 0, kbar = 1, Tpf = 0, D = 0;
    auto solve = [&](double d_at) {
        D = c.decode_s(std::max(d_at, 1.0));
        const double d_o = d_at * others;  // the decodes beside a prompt of this request
        e = 0;
        kbar = 0;
        for (double p : P) {
            const auto [t, k] = own(p, d_o, 0, 0);
            e += std::max(t - k * D, 0.0);
            kbar += k;
        }
        e /= kGrid;
        kbar /= kGrid;
        const double mo = m * others;
        Tpf = 0;
        for (double p : P) Tpf += own(p, d_o, mo * kbar * Pm / 2.0, mo * Pm / 2.0).first;
        Tpf /= kGrid;
    };
    for (int it = 0; it < 200; ++it) {
        solve(d);
        if (closed) {
            // TPOT·(TTFT + a·TPOT) − (N−1)·e·TPOT = D·(TTFT + a·TPOT).
            const double bq = Tpf - (N - 1) * e - D * a, cq = -D * Tpf;
            y = a > 0 ? (-bq + std::sqrt(bq * bq - 4 * a * cq)) / (2 * a) : D;
            if (!(y > 0) || !std::isfinite(y)) y = D;
            X = N / (Tpf + a * y);
        } else {
            X = lambda;
            if (X * e >= 1) {
                r.stable = false;
                r.unstable_reason = fmt::format("prompts alone fill every step: {:g} requests/s × {:.3g} s of prefill each", lambda, e);
                return r;
            }
            y = D / (1.0 - X * e);
        }
        s = X * e < 1 ? D / (1.0 - X * e) : y;
        const double d_new = X * a * y, m_new = X * s;
        const bool done = it > 2 && std::abs(d_new - d) <= 1e-7 * std::max(d_new, 1.0) && std::abs(m_new - m) <= 1e-7 * std::max(m_new, 1.0);
        d = 0.5 * (d + d_new);  // damped: D(d) and the budget move with d
        m = 0.5 * (m + m_new);
        if (done) break;
    }
    // Prompts beyond the budget: each step carries Q prompt tokens, and prompts queue for them.
    if (sch.step_tokens && X * s * Pm > budget(d)) {
        if (!closed) {
            r.stable = false;
            r.unstable_reason = fmt::format("{:.0f} prompt tokens a step exceed the step's {} tokens less its {:.0f} decodes", X * s * Pm,
                                            sch.step_tokens, d);
            return r;
        }
        // Closed loop, budget-bound: every step full, s = step(d, Q); prompts finish Q/(P·s) a
        // second; the users not decoding are waiting for or in their prefill (Little).
        for (int it = 0; it < 200; ++it) {
            const double Q = budget(d);
            s = y = c.step_s(d, Q);
            X = Q / (Pm * s);
            const double d_new = std::min(X * a * y, N);
            if (std::abs(d_new - d) <= 1e-7 * std::max(d_new, 1.0)) break;
            d = 0.5 * (d + d_new);
        }
        Tpf = (N - d) / X;
        r.step_mean_s = s;
        r.tpot_mean_s = r.tpot_p90_s = y;
        TtftDistribution t;
        const double wait = (static_cast<double>(L.users) - N) / X;
        for (double p : P) t.base.push_back(Tpf * p / Pm + wait);
        r.requests_per_s = X;
        r.running_mean = N;
        r.waiting_mean = static_cast<double>(L.users) - N;
        r.tokens_per_s = X * Om;
        fill_ttft(r, t, slo);
        return r;
    }
    const double R_run = Tpf + a * y;  // admitted to finished
    const double mo = m * others;
    r.step_mean_s = s;
    r.tpot_mean_s = y;
    r.tpot_p90_s = y;
    TtftDistribution t;
    if (closed) {
        // Users beyond what runs at once wait in line: (U − N) ahead, served X a second.
        const double wait = (static_cast<double>(L.users) - N) / X;
        for (double p : P) t.base.push_back(own(p, d * others, mo * kbar * Pm / 2.0, mo * Pm / 2.0).first + wait);
        r.requests_per_s = X;
        r.running_mean = N;
        r.waiting_mean = static_cast<double>(L.users) - N;
    } else {
        // Admission: M servers, each request holding one for R_run (Erlang C, exponential tail).
        const double offered = lambda * R_run;
        if (offered >= M) {
            r.stable = false;
            r.unstable_reason =
                fmt::format("{:g} requests/s × {:.3g} s each need {:.1f} running at once, {} allowed", lambda, R_run, offered, M);
            return r;
        }
        t.wait_p = erlang_c(static_cast<u64>(M), offered);
        t.wait_mean = R_run / (M - offered);
        // An arrival finds a step under way unless no request runs (the queue's P0), and waits
        // for its rest: a prompt step (a share f of steps, each D + e/k long) or a decode-only
        // step (D), each in proportion to its length, the rest uniform over it.
        const double busy = 1.0 - idle_probability(static_cast<u64>(M), offered);
        const double f = std::min(1.0, m * kbar), tp = D + e / std::max(kbar, 1.0);
        const double w_prompt = f * tp / ((1 - f) * D + f * tp);
        for (double p : P) {
            const double base = own(p, d, mo * kbar * Pm / 2.0, mo * Pm / 2.0).first;
            for (size_t j = 0; j < 16; ++j) {
                const double u = (static_cast<double>(j) + 0.5) / 16.0;
                if (u >= busy) {
                    t.base.push_back(base);
                    continue;
                }
                const double v = u / busy;
                t.base.push_back(base + (v < w_prompt ? tp * (v / w_prompt) : D * ((v - w_prompt) / (1 - w_prompt))));
            }
        }
        r.requests_per_s = lambda;
        r.running_mean = offered;
        r.waiting_mean = t.wait_p * lambda * t.wait_mean;
    }
    r.tokens_per_s = r.requests_per_s * Om;
    fill_ttft(r, t, slo);
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
        r.requests_per_s = lambda;
        r.running_mean = b;
    }
    r.step_mean_s = c.decode_s(b);
    r.tpot_mean_s = r.tpot_p90_s = c.decode_s(b);
    r.tokens_per_s = r.requests_per_s * Om;
    fill_ttft(r, t, slo);
    return r;
}

}  // namespace

ServingResult serve_steady(const Scheduler& sched, const ServingLoad& load, const StepCostTable& cost, const ServingSlo& slo) {
    return sched.continuous ? continuous_steady(sched, load, cost, slo) : static_steady(load, cost, slo);
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
        const double stay = L.output.mean() * c.decode_s(static_cast<double>(std::min(L.users, M))) +
                            c.step_s(0, L.prompt.mean());
        for (u64 i = 0; i < L.users; ++i) new_request(stay * static_cast<double>(i) / static_cast<double>(L.users));
    } else {
        next_arrival = gap(rng);
    }
    std::vector<double> ttft, tpot;  // measured requests (tpot: those of two tokens or more)
    std::vector<char> met;           // each measured request met every SLO
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
        const double tau = sch.continuous || q == 0 ? c.step_s(static_cast<double>(d), static_cast<double>(q)) : c.step_s(0, static_cast<double>(q));
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
