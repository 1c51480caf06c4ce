#pragma once
// Typed errors. Library code throws; only main() turns them into exit codes.
//   InputError    — the user's input is wrong (exit code 2): file:line: field: message.
//   OverflowError — an exact byte/FLOP count does not fit 64 bits (exit code 2; the input is extreme).
//   InternalError — a bug in memtax (exit code 3).
#include <stdexcept>
#include <string>
#include <vector>

namespace memtax {

struct SourcePos {
    std::string file;  // "" for built-in or command-line values
    int line = 0;      // 1-based; 0 = unknown
    int column = 0;    // 1-based; 0 = unknown
};

class InputError : public std::runtime_error {
public:
    InputError(SourcePos pos, std::string field, std::string message);
    const SourcePos& pos() const { return pos_; }
    const std::string& field() const { return field_; }
    const std::string& message() const { return message_; }

private:
    SourcePos pos_;
    std::string field_;
    std::string message_;
};

class OverflowError : public std::runtime_error {
public:
    explicit OverflowError(const std::string& term);
};

class InternalError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// The number of single-character edits between two words (Levenshtein).
size_t edit_distance(const std::string& a, const std::string& b);
// The "did you mean" suggestion for a misspelled name; empty when nothing is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);
// ` (did you mean "x"?)` for the closest candidate, or "" when nothing is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace memtax
