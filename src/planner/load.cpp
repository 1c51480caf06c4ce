#include "planner/load.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/number.hpp"
#include "model/serving_costs.hpp"

namespace memtax {

double LoadResult::ttft_at(unsigned percentile) const {
    switch (percentile) {
        case 0:
            return ttft_mean_s;
        case 50:
            return ttft_p50_s;
        case 99:
            return ttft_p99_s;
        default:
            return ttft_p90_s;
    }
}

ReplicaLoad::ReplicaLoad(const Plan& plan, const Topology& topo, const ScenarioSpec& s, u64 max_running)
    : plan_(plan), topo_(topo), s_(s), max_running_(std::max<u64>(max_running, 1)) {
    shape_.prompt = spread_of(s.prompt.mean, s.prompt.max);
    shape_.output = spread_of(s.output.mean, s.output.max);
    shape_.max_running = max_running_;
    slo_.ttft_s = s.ttft_s;
    slo_.tpot_s = s.tpot_s;
}

const StepCostTable* ReplicaLoad::costs(u64 users) {
    // A continuous-batching step's prefill batch is its token budget's, whatever the users; a
    // static batch prefills the users it holds together.
    const u64 key = plan_.runtime().scheduler().continuous ? 0 : users;
    auto it = costs_.find(key);
    if (it == costs_.end()) {
        std::optional<StepCostTable> t;
        try {
            // The decode steps do not depend on the users: priced once, and only the prefill again.
            if (!costs_.empty() && costs_.begin()->second) {
                t = *costs_.begin()->second;
                t->per_token_s =
                    prefill_per_token_s(plan_, topo_, s_.prompt.mean, prefill_batch(plan_, s_.prompt.mean, max_running_, users));
            } else if (costs_.empty()) {
                // Decode steps are priced up to the most sequences the load can run at once: the
                // users (a closed loop never runs more), or the running limit under a rate.
                const u64 reach = s_.request_rate_per_s ? max_running_ : std::min(max_running_, s_.concurrency);
                t = step_costs(plan_, topo_, s_.prompt.mean, s_.output.mean, reach, users);
            }
        } catch (const InputError&) {
        } catch (const OverflowError&) {
        }
        it = costs_.emplace(key, std::move(t)).first;
    }
    return it->second ? &*it->second : nullptr;
}

LoadResult ReplicaLoad::serve(u64 dp) {
    if (s_.request_rate_per_s) return open(dp);
    return s_.burst ? burst(dp) : closed(dp);
}

namespace {

LoadResult untimed() {
    LoadResult r;
    r.verdict = LoadResult::Verdict::Untimed;
    r.reason = "its steps cannot be timed";
    return r;
}

void take(LoadResult& r, const ServingResult& x) {
    r.ttft_mean_s = x.ttft_mean_s;
    r.ttft_p50_s = x.ttft_p50_s;
    r.ttft_p90_s = x.ttft_p90_s;
    r.ttft_p99_s = x.ttft_p99_s;
    r.tpot_s = x.tpot_mean_s;
    r.itl_s = x.itl_mean_s;
}

}  // namespace

LoadResult ReplicaLoad::closed(u64 dp) {
    // Whole users over the replicas: `fuller` replicas get one more than the rest.
    const u64 hi = (s_.concurrency + dp - 1) / dp, fuller = s_.concurrency - (hi - 1) * dp;
    LoadResult r;
    r.method = "steady state";
    r.sequences = hi;
    double speed = 0, reading = 0;  // Σ users / TPOT, Σ users / ITL over the replicas
    for (const u64 users : {hi, hi - 1}) {
        const u64 replicas = users == hi ? fuller : dp - fuller;
        if (users == 0 || replicas == 0) continue;
        auto it = closed_.find(users);
        if (it == closed_.end()) {
            const StepCostTable* c = costs(users);
            if (!c) return untimed();
            ServingLoad l = shape_;
            l.users = users;
            it = closed_.emplace(users, plan_.runtime().serve(l, *c, slo_)).first;
        }
        const ServingResult& x = it->second;
        if (users == hi) take(r, x);
        const double n = static_cast<double>(replicas);
        speed += n * static_cast<double>(users) / x.tpot_mean_s;
        reading += n * static_cast<double>(users) / x.itl_mean_s;
        r.requests_per_s += n * x.requests_per_s;
        r.tokens_per_s += n * x.tokens_per_s;
        r.goodput_tokens_per_s += n * x.goodput_tokens_per_s();
    }
    // Over every user: each reads at 1 / ITL of its replica, so the deployment's TPOT and ITL are
    // the users' harmonic means (a replica with one user fewer reads a little faster).
    r.tpot_s = static_cast<double>(s_.concurrency) / speed;
    r.itl_s = static_cast<double>(s_.concurrency) / reading;
    return r;
}

LoadResult ReplicaLoad::open(u64 dp) {
    const StepCostTable* c = costs(0);
    if (!c) return untimed();
    ServingLoad l = shape_;
    l.rate_per_s = *s_.request_rate_per_s / static_cast<double>(dp);
    const ServingResult x = plan_.runtime().serve(l, *c, slo_);
    LoadResult r;
    r.method = "steady state";
    if (!x.stable) {
        r.verdict = LoadResult::Verdict::Unstable;
        r.reason = fmt::format("unstable: the rate exceeds what it serves ({} replica{}: {})", dp, dp == 1 ? "" : "s", x.unstable_reason);
        return r;
    }
    take(r, x);
    r.sequences = std::clamp<u64>(ceil_to_u64_saturating(x.running_mean), 1, max_running_);
    const double n = static_cast<double>(dp);
    r.requests_per_s = n * x.requests_per_s;
    r.tokens_per_s = n * x.tokens_per_s;
    r.goodput_tokens_per_s = n * x.goodput_tokens_per_s();
    return r;
}

double ReplicaLoad::max_rate() {
    if (max_rate_) return *max_rate_;
    const StepCostTable* c = costs(0);
    ServingLoad l = shape_;
    auto stable = [&](double rate) {
        l.rate_per_s = rate;
        return plan_.runtime().serve(l, *c, slo_).stable;
    };
    double lo = 0, hi = 0;
    if (c) {
        // Bracket from one request per step of a lone decode (never sustainable at once), then bisect.
        hi = 1.0 / std::max(c->step_s(1, l.prompt.mean()), 1e-12);
        for (int i = 0; i < 64 && stable(hi); ++i) lo = hi, hi *= 2;
        while (hi - lo > 1e-3 * hi) {
            const double mid = 0.5 * (lo + hi);
            (stable(mid) ? lo : hi) = mid;
        }
    }
    max_rate_ = lo;
    return lo;
}

LoadResult ReplicaLoad::burst(u64 dp) {
    // The fullest replica's burst; the others' (one fewer) finish no later, and the throughput
    // counts every sequence: concurrency / TPOT of the fullest replica's step.
    const u64 b = (s_.concurrency + dp - 1) / dp;
    auto it = bursts_.find(b);
    if (it == bursts_.end()) {
        std::optional<TimeEstimate> t;
        try {
            t = estimate_time(plan_, Point{Mode::Prefill, b, s_.prompt.mean}, topo_);
        } catch (const InputError&) {
        } catch (const OverflowError&) {
        }
        it = bursts_.emplace(b, std::move(t)).first;
    }
    if (!it->second) return untimed();
    const TimeEstimate& t = *it->second;
    LoadResult r;
    r.method = "burst";
    r.sequences = b;
    const FirstToken& f = t.first_token;
    // First tokens come from first_s to last_s as the burst's prompts complete: a percentile is
    // taken along that line (a static batch's are all one).
    auto along = [&](double q) { return f.first_s + q * (f.last_s - f.first_s); };
    r.ttft_mean_s = f.mean_s;
    r.ttft_p50_s = along(0.5);
    r.ttft_p90_s = along(0.9);
    r.ttft_p99_s = along(0.99);
    r.tpot_s = r.itl_s = t.tpot_s;
    r.tokens_per_s = t.tpot_s > 0 ? static_cast<double>(s_.concurrency) / t.tpot_s : 0;
    const double per_request = r.ttft_mean_s + static_cast<double>(s_.output.mean) * t.tpot_s;
    r.requests_per_s = per_request > 0 ? static_cast<double>(s_.concurrency) / per_request : 0;
    // Goodput: the share of the burst whose first token is within the TTFT SLO (along the line),
    // all of it or none by TPOT.
    double met = 1;
    if (s_.ttft_s) {
        const double span = f.last_s - f.first_s;
        met = *s_.ttft_s >= f.last_s ? 1.0 : *s_.ttft_s < f.first_s ? 0.0 : span > 0 ? (*s_.ttft_s - f.first_s) / span : 1.0;
    }
    if (s_.tpot_s && t.tpot_s > *s_.tpot_s) met = 0;
    r.goodput_tokens_per_s = r.tokens_per_s * met;
    return r;
}

}  // namespace memtax
