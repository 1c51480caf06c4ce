#pragma once
// A progress line on stderr for long plans and sweeps: drawn only when stderr is a terminal,
// at most every 1% and 100 ms, erased when done; silent in pipes, files and CI logs.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <ostream>
#include <string>

#include <fmt/format.h>

namespace memtax::cli {

class Progress {
public:
    Progress(std::ostream& err, std::string what)
        : err_(err), what_(std::move(what)), tty_(::isatty(STDERR_FILENO) == 1 && &err == &std::cerr) {}
    std::function<void(u64, u64)> callback() {
        if (!tty_) return {};
        return [this](u64 done, u64 total) {
            const auto now = std::chrono::steady_clock::now();
            const u64 pct = total ? done * 100 / total : 100;
            if (pct == last_pct_ || now - last_ < std::chrono::milliseconds(100)) return;
            last_pct_ = pct;
            last_ = now;
            const int width = 30;
            const int filled = static_cast<int>(pct * width / 100);
            err_ << fmt::format("\r{} [{}{}] {:>3}% ({}/{})", what_, std::string(static_cast<size_t>(filled), '#'),
                                std::string(static_cast<size_t>(width - filled), ' '), pct, done, total)
                 << std::flush;
            drawn_ = true;
        };
    }
    void done() {
        if (drawn_) err_ << "\r\033[K" << std::flush;
        drawn_ = false;
    }
    ~Progress() { done(); }

private:
    std::ostream& err_;
    std::string what_;
    bool tty_;
    bool drawn_ = false;
    u64 last_pct_ = 101;
    std::chrono::steady_clock::time_point last_{};
};

}  // namespace memtax::cli
