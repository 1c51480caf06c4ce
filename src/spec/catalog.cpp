// The built-in catalog and name-or-path resolution.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>

#include "spec/loaders.hpp"
#include "spec/yaml_reader.hpp"

namespace memtax {
namespace {

// A file argument: it exists, names a profile extension, or starts like a path. (A slash alone
// is not enough: Hugging Face ids such as meta-llama/Llama-3.1-8B are catalog aliases.)
bool looks_like_path(const std::string& s) {
    return s.ends_with(".yaml") || s.ends_with(".yml") || s.ends_with(".json") || s.starts_with("/") || s.starts_with("./") ||
           s.starts_with("../");
}

// A profile's top-level `key:` line, after the colon, read without parsing the document: a CLI
// call parses only the profiles it uses. (Every catalog profile states its name and aliases on
// one line each; the full parse of the one picked checks them.) nullopt when there is no such key.
std::optional<std::string_view> top_level_line(const char* text, std::string_view key) {
    std::string_view t(text);
    for (size_t at = 0; at < t.size();) {
        size_t end = t.find('\n', at);
        if (end == std::string_view::npos) end = t.size();
        std::string_view line = t.substr(at, end - at);
        if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') return line.substr(key.size() + 1);
        at = end + 1;
    }
    return std::nullopt;
}

// The value of a top-level `key:` line, unquoted ("" when absent or a mapping header).
std::string top_level_value(const char* text, std::string_view key) {
    std::string_view line = top_level_line(text, key).value_or(std::string_view());
    auto strip = [](char c) { return c == ' ' || c == '"' || c == '\'' || c == '\r'; };
    while (!line.empty() && strip(line.front())) line.remove_prefix(1);
    while (!line.empty() && strip(line.back())) line.remove_suffix(1);
    return std::string(line);
}

// `aliases: [a, b]` as a list.
std::vector<std::string> declared_aliases(const char* text) {
    std::string v = top_level_value(text, "aliases");
    std::vector<std::string> out;
    if (v.size() < 2 || v.front() != '[' || v.back() != ']') return out;
    v = v.substr(1, v.size() - 2);
    size_t at = 0;
    while (at <= v.size()) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        std::string a = v.substr(at, comma - at);
        while (!a.empty() && (a.front() == ' ' || a.front() == '"')) a.erase(a.begin());
        while (!a.empty() && (a.back() == ' ' || a.back() == '"')) a.pop_back();
        if (!a.empty()) out.push_back(a);
        at = comma + 1;
    }
    return out;
}

// Lower case, letters and digits only: "Llama-3.1-8B" and "llama3.1_8b" are one key.
std::string fold(std::string_view s) {
    std::string out;
    for (char c : s)
        if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The words of a release that change the weights, not their shapes ("-Instruct", "-it").
bool release_word(const std::string& lower) {
    static const std::vector<std::string> words = {"instruct", "chat", "base", "hf", "it", "pt"};
    return std::find(words.begin(), words.end(), lower) != words.end();
}

// A Hugging Face id without its organisation ("Qwen/Qwen2.5-7B" -> "Qwen2.5-7B").
std::string_view without_organisation(std::string_view s) {
    const size_t slash = s.rfind('/');
    return slash == std::string_view::npos ? s : s.substr(slash + 1);
}

// A name as users write it, reduced to the shapes it names: the Hugging Face organisation
// ("Qwen/"), the release words that change the weights but not their shapes ("-Instruct",
// "-Chat", "-Base", "-hf", "-it", "-pt") and Meta's old "Meta-" prefix are dropped, then folded.
// "meta-llama/Meta-Llama-3.1-8B-Instruct" and "Llama-3.1-8B" are one key.
std::string shape_key(std::string_view s) {
    s = without_organisation(s);
    std::vector<std::string> words;
    std::string word;
    for (size_t i = 0; i <= s.size(); ++i) {
        const char c = i < s.size() ? s[i] : '-';
        if (c == '-' || c == '_' || c == ' ') {
            if (!word.empty()) words.push_back(word);
            word.clear();
        } else {
            word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    std::string out;
    for (size_t i = 0; i < words.size(); ++i) {
        if (release_word(words[i])) continue;
        if (i == 0 && words[i] == "meta" && words.size() > 1 && words[1].starts_with("llama")) continue;
        out += fold(words[i]);
    }
    return out;
}

// The words of a name for ranking suggestions: runs of letters, and numbers with the unit that
// follows them ("80gb", "32b", "8x7b"); a number with a unit is a size, a bare one a version or a
// product number. "Qwen2.5-32B" is {qwen, 2, 5, 32b}.
struct NameWords {
    std::vector<std::string> sizes, numbers, letters;
};
NameWords name_words(std::string_view s) {
    s = without_organisation(s);
    NameWords w;
    size_t i = 0;
    auto is_digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
    auto is_alpha = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
    while (i < s.size()) {
        if (is_digit(s[i])) {
            size_t j = i;
            while (j < s.size() && is_digit(s[j])) ++j;
            std::string number(s.substr(i, j - i));
            // A unit is a short run of letters right after the digits that ends the word
            // ("32B", "80GB", "8x7B" keeps "8x7b" whole).
            size_t k = j;
            while (k < s.size() && is_alpha(s[k])) ++k;
            const std::string unit = fold(s.substr(j, k - j));
            if (unit == "x" && k < s.size() && is_digit(s[k])) {
                size_t m = k;
                while (m < s.size() && is_digit(s[m])) ++m;
                size_t n = m;
                while (n < s.size() && is_alpha(s[n])) ++n;
                w.sizes.push_back(fold(s.substr(i, n - i)));
                i = n;
                continue;
            }
            if ((unit == "b" || unit == "m" || unit == "gb" || unit == "k") && (k == s.size() || !is_alpha(s[k]))) {
                w.sizes.push_back(number + unit);
                i = k;
                continue;
            }
            w.numbers.push_back(number);
            i = j;
        } else if (is_alpha(s[i])) {
            size_t j = i;
            while (j < s.size() && is_alpha(s[j])) ++j;
            const std::string letters = fold(s.substr(i, j - i));
            if (!release_word(letters)) w.letters.push_back(letters);
            i = j;
        } else {
            ++i;
        }
    }
    return w;
}

// How many words one list has that the other lacks (as multisets).
size_t words_apart(std::vector<std::string> a, std::vector<std::string> b) {
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::vector<std::string> diff;
    std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(diff));
    return diff.size();
}

struct Entry {
    std::string name, display;
    std::vector<std::string> aliases;
    const EmbeddedFile* file;
    // A derived profile (a calibrated copy) is chosen only by its own name or alias, never for
    // a family word or as a suggestion.
    bool derived = false;
};

// The suggestion for a name that resolves to nothing: the profile whose sizes agree (a 32B
// model is never offered for a 72B one), then whose version and product numbers agree, then
// with the fewest words apart, then the fewest edits. A candidate that states a different size
// is never offered; one whose numbers differ only when its spelling is close.
std::string suggestion(const std::string& arg, const std::vector<Entry>& entries) {
    const NameWords want = name_words(arg);
    const std::string key = shape_key(arg);
    struct Rank {
        size_t numbers, words, edits;
        auto operator<=>(const Rank&) const = default;
    };
    const Entry* best = nullptr;
    Rank best_rank{};
    for (const auto& e : entries) {
        if (e.derived) continue;
        std::vector<std::string> spellings = e.aliases;
        spellings.push_back(e.name);
        if (!e.display.empty()) spellings.push_back(e.display);
        for (const auto& sp : spellings) {
            const NameWords have = name_words(sp);
            // Sizes conflict when both state one and they differ.
            if (!want.sizes.empty() && !have.sizes.empty() && words_apart(want.sizes, have.sizes) != 0) continue;
            const std::string folded = shape_key(sp);
            const size_t edits = edit_distance(key, folded);
            const size_t numbers = words_apart(want.numbers, have.numbers);
            const bool close = edits <= std::max<size_t>(2, key.size() / 3);
            if (numbers != 0 && !close) continue;
            // Something beyond the numbers must agree: a brand word or a size.
            const bool shares_letters = words_apart(want.letters, have.letters) < want.letters.size() + have.letters.size();
            const bool shares_size = !want.sizes.empty() && !have.sizes.empty();
            if (!shares_letters && !shares_size && !close) continue;
            const Rank r{numbers, words_apart(want.letters, have.letters) + words_apart(want.sizes, have.sizes), edits};
            if (!best || r < best_rank) {
                best = &e;
                best_rank = r;
            }
        }
    }
    return best ? best->name : std::string();
}

template <typename Spec>
Spec resolve(const std::string& what, const std::string& arg, const std::vector<EmbeddedFile>& files,
             Spec (*load_text)(const std::string&, const std::string&), const std::function<Spec(const std::string&)>& load_path) {
    // A file path overrides the catalog.
    // The error_code form: a name too long for a path (or unreadable) is a catalog name, not a crash.
    std::error_code ec;
    if (std::filesystem::exists(arg, ec) || looks_like_path(arg)) return load_path(arg);
    std::vector<Entry> entries;
    for (const auto& f : files)
        entries.push_back({top_level_value(f.text, "name"), top_level_value(f.text, "display_name"), declared_aliases(f.text), &f,
                           top_level_line(f.text, "calibration").has_value()});
    auto load = [&](const Entry& e) {
        Spec s = load_text(e.file->text, e.file->path);
        if (s.name != e.name) throw InternalError(fmt::format("catalog profile {} declares name {}", e.file->path, s.name));
        return s;
    };
    // 1. The exact name; 2. a declared alias (HF repository ids, older spellings, the family
    // word of the canonical profile: "h100" is h100-sxm); 3. the same letters and digits
    // ("llama3.1-8b"); 4. the same shapes as users write them ("Qwen/Qwen2.5-7B-Instruct"); 5. a
    // family prefix that picks one profile ("mi300").
    for (const auto& e : entries)
        if (e.name == arg) return load(e);
    const std::string key = fold(arg);
    for (const auto& e : entries)
        for (const auto& a : e.aliases)
            if (a == arg || fold(a) == key) return load(e);
    for (const auto& e : entries)
        if (fold(e.name) == key) return load(e);
    const std::string shapes = shape_key(arg);
    if (!shapes.empty()) {
        for (const auto& e : entries)
            if (!e.derived && shape_key(e.name) == shapes) return load(e);
        for (const auto& e : entries)
            for (const auto& a : e.aliases)
                if (!e.derived && shape_key(a) == shapes) return load(e);
    }
    // A family prefix ends where a word of the name ends: "h100" names h100-sxm and h100-pcie,
    // but "llama-3.1-8" is a typo of llama-3.1-8b, not its family.
    auto family_of = [&](const std::string& name) {
        for (size_t cut = 1; cut <= name.size(); ++cut)
            if ((cut == name.size() || !std::isalnum(static_cast<unsigned char>(name[cut]))) && fold(name.substr(0, cut)) == key)
                return true;
        return false;
    };
    std::vector<const Entry*> family;
    if (!key.empty())
        for (const auto& e : entries) {
            if (e.derived) continue;
            bool hit = family_of(e.name);
            for (const auto& a : e.aliases) hit = hit || family_of(a);
            if (hit) family.push_back(&e);
        }
    if (family.size() == 1) return load(*family.front());
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.name);
    if (family.size() > 1) {
        std::vector<std::string> options;
        for (const Entry* e : family)
            options.push_back(e->display.empty() || e->display == e->name ? e->name : fmt::format("{} ({})", e->name, e->display));
        throw InputError(SourcePos{}, what,
                         fmt::format("\"{}\" names {} built-in {}s; pick one: {}", arg, family.size(), what, fmt::join(options, ", ")));
    }
    const std::string close = suggestion(arg, entries);
    const std::string hint = close.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", close);
    throw InputError(SourcePos{}, what,
                     fmt::format("unknown {} \"{}\"{}; built-in: {} (or give a file path)", what, arg, hint, fmt::join(names, ", ")));
}

// Every embedded profile of one kind, loaded with its loader.
template <typename Spec>
std::vector<Spec> load_all(const std::vector<EmbeddedFile>& files, Spec (*load)(const std::string&, const std::string&)) {
    std::vector<Spec> out;
    for (const auto& f : files) out.push_back(load(f.text, f.path));
    return out;
}

// A YAML profile from a path.
template <typename Spec>
auto from_file(Spec (*load)(const std::string&, const std::string&)) {
    return [load](const std::string& path) { return load(read_input_file(path), path); };
}

}  // namespace

std::vector<ModelSpec> catalog_models() { return load_all(embedded_models(), &load_model_yaml); }
std::vector<GpuSpec> catalog_gpus() { return load_all(embedded_gpus(), &load_gpu_yaml); }
std::vector<RuntimeSpec> catalog_runtimes() { return load_all(embedded_runtimes(), &load_runtime_yaml); }
std::vector<ClusterSpec> catalog_clusters() { return load_all(embedded_clusters(), &load_cluster_yaml); }

ModelSpec resolve_model(const std::string& arg) {
    return resolve<ModelSpec>("model", arg, embedded_models(), &load_model_yaml, [](const std::string& path) {
        std::string text = read_input_file(path);
        return path.ends_with(".json") ? load_hf_config(text, path) : load_model_yaml(text, path);
    });
}

RuntimeSpec resolve_runtime(const std::string& arg) {
    return resolve<RuntimeSpec>("runtime", arg, embedded_runtimes(), &load_runtime_yaml, from_file(&load_runtime_yaml));
}

ClusterSpec resolve_cluster(const std::string& arg) {
    return resolve<ClusterSpec>("cluster", arg, embedded_clusters(), &load_cluster_yaml, from_file(&load_cluster_yaml));
}

GpuSpec resolve_gpu(const std::string& arg) {
    return resolve<GpuSpec>("gpu", arg, embedded_gpus(), &load_gpu_yaml, from_file(&load_gpu_yaml));
}

}  // namespace memtax
