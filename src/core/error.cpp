#include "core/error.hpp"

#include <fmt/format.h>
#include <algorithm>

namespace memtax {
namespace {

std::string render(const SourcePos& pos, const std::string& field, const std::string& message) {
    std::string where;
    if (!pos.file.empty()) where = pos.line > 0 ? fmt::format("{}:{}: ", pos.file, pos.line) : pos.file + ": ";
    if (!field.empty()) where += field + ": ";
    return where + message;
}

}  // namespace

// Levenshtein distance, hand-written: none of the project's libraries offers one and it is
// ten lines (ninja's SpellcheckStringV does the same).
size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

InputError::InputError(SourcePos pos, std::string field, std::string message)
    : std::runtime_error(render(pos, field, message)), pos_(std::move(pos)), field_(std::move(field)), message_(std::move(message)) {}

OverflowError::OverflowError(const std::string& term) : std::runtime_error(fmt::format("arithmetic overflow: {} exceeds 2^64-1", term)) {}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
    for (const auto& c : candidates) {
        size_t d = edit_distance(word, c);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    std::string hint = closest_match(word, candidates);
    return hint.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", hint);
}

}  // namespace memtax
