// Capacity reports and the CI gate: the SVG module against hand-computed coordinates, the
// report's numbers against hand counts, determinism (twice, and under a decimal-comma locale),
// the committed reports/ being current, the page rendered by headless Chromium, JUnit, and
// `memtax check` against a baseline.
#include <gtest/gtest.h>

#include <cairo.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <locale>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli_run.hpp"
#include "core/format.hpp"
#include "report/capacity_report.hpp"
#include "report/document.hpp"
#include "report/svg.hpp"
#include "spec/loaders.hpp"

using namespace memtax;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
}

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("memtax_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string src(const std::string& rel) { return (fs::path(MEMTAX_SOURCE_DIR) / rel).string(); }

// The DOM of `page` after headless Chromium has run its scripts (`flags`: the browser's; a
// `timeout` makes a browser that hangs fail the test instead of the job). Empty if it did not run.
std::string dump_dom(const std::string& flags, const std::string& page) {
    const std::string cmd = "timeout 120 chromium " + flags + " --dump-dom file://" + page + " 2>/dev/null";
    std::string dom;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[65536];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) dom.append(buf, n);
        ::pclose(p);
    }
    return dom;
}

}  // namespace

// --- the SVG module -----------------------------------------------------------------------------

TEST(Svg, LinearAxesPlaceValuesByHand) {
    // Plot area: x from 70 to 960 − 250 = 710 px, y from 380 − 44 = 336 px (bottom) to 34 px (top).
    // x over [0, 10]: 5 sits at 70 + 0.5 · 640 = 390; y over [0, 4]: 2 at 336 − 0.5 · 302 = 185.
    const std::string s =
        svg::line_chart("t", {"x", false, nullptr}, {"y", false, nullptr}, {{"a", {{0, 0}, {5, 2}, {10, 4}}, "#ff0000", false}});
    EXPECT_NE(s.find("d=\"M70.00,336.00 L390.00,185.00 L710.00,34.00\""), std::string::npos) << s;
    EXPECT_NE(s.find("<title>a</title>"), std::string::npos);
    EXPECT_EQ(s.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_EQ(s.substr(s.size() - 7), "</svg>\n");
}

TEST(Svg, LogAxesAndZeros) {
    // A log x axis over [1024, 4096]: 2048 sits half-way, 70 + 0.5 · 640 = 390. y on a log axis is
    // widened to whole decades, [1, 100]: 10 sits half-way, 336 − 0.5 · 302 = 185. A zero y is left out.
    const std::string s =
        svg::line_chart("t", {"x", true, nullptr}, {"y", true, nullptr},
                        {{"kv", {{1024, 1}, {2048, 10}, {4096, 100}}, "#0000ff", false}, {"none", {{1024, 0}}, "#000000", true}});
    EXPECT_NE(s.find("L390.00,185.00"), std::string::npos) << s;
    EXPECT_EQ(s.find("<title>none</title>"), std::string::npos);  // nothing left to draw
}

TEST(Svg, StackedBarsAreProportional) {
    // Bars from x = 200 to 710 (510 px) over [0, 10]: parts 2 and 3 are 102 px and 153 px wide.
    const std::string s = svg::stacked_bars("t", "GiB", {"a", "b"}, {"#111111", "#222222"}, {{"plan", {2, 3}, 10}});
    EXPECT_NE(s.find("x=\"200.00\" y=\"34\" width=\"102.00\""), std::string::npos) << s;
    EXPECT_NE(s.find("x=\"302.00\" y=\"34\" width=\"153.00\""), std::string::npos) << s;
    EXPECT_NE(s.find("<title>usable 10.00 GiB</title>"), std::string::npos);
}

TEST(Svg, RooflineBendsAtTheRidge) {
    // Peak 1e15 FLOP/s over 1e12 B/s: the ridge at 1,000 FLOP/B; the roof has three corners.
    const std::string s = svg::roofline("t", 1e15, 1e12, {{"mlp", 100, 1e14}});
    const size_t roof = s.find("class=\"roof\" d=\"M");
    ASSERT_NE(roof, std::string::npos);
    const std::string d = s.substr(roof + 17, s.find('"', roof + 17) - roof - 17);
    EXPECT_EQ(std::count(d.begin(), d.end(), 'L'), 2) << d;
    EXPECT_NE(s.find("<title>mlp: 100 FLOP/B, 1e+14 FLOP/s</title>"), std::string::npos) << s;
    EXPECT_EQ(svg::escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
}

// --- the report --------------------------------------------------------------------------------

TEST(Report, NumbersMatchTheHandCount) {
    // tiny-8b: one 1k conversation on Llama-3.1-8B, best plan 1× H100, 1 sequence. At 1,024 tokens
    // the KV cache is 131,072 B · 1,024 = 134,217,728 B and eager attention's S×S tensors
    // 322 B · 1,024² = 337,641,472 B (see Sweep.EagerAttentionIsQuadraticWithTheHandCoefficient).
    const CapacityReport r = build_capacity_report(load_scenario_file(src("tests/data/scenarios/tiny-8b.yaml")));
    const CapacityFiles f = render_capacity_report(r, "test");
    const auto j = nlohmann::json::parse(f.json);
    EXPECT_EQ(j["schema"], "memtax.report/1");
    const auto& fused = j["memory_vs_context"]["fused"]["points"][0];
    const auto& eager = j["memory_vs_context"]["eager"]["points"][0];
    EXPECT_EQ(fused["context"], 1024);
    EXPECT_EQ(fused["kv_cache_bytes"], 134217728u);
    EXPECT_EQ(eager["attention_matrix_bytes"], 337641472u);
    EXPECT_EQ(fused["attention_matrix_bytes"], 0u);
    EXPECT_EQ(j["plan"]["plans"]["rows"][0]["gpus"], 1);
    // Each form carries the same best plan.
    EXPECT_NE(f.markdown.find("| 1 | h100-sxm | 1 | 1 | 1 | 1 |"), std::string::npos) << f.markdown;
    EXPECT_NE(f.csv.find("plans,1,h100-sxm,1,1,1,1,"), std::string::npos) << f.csv;
    EXPECT_NE(f.html.find("<td class=\"l\">h100-sxm</td>"), std::string::npos);
    EXPECT_EQ(std::count(f.html.begin(), f.html.end(), '<') - std::count(f.html.begin(), f.html.end(), '>'), 0);
    // Three charts inline, no external resource.
    size_t svgs = 0;
    for (size_t at = f.html.find("<svg"); at != std::string::npos; at = f.html.find("<svg", at + 1)) ++svgs;
    EXPECT_EQ(svgs, 3u);
    EXPECT_EQ(f.html.find("http://"), f.html.find("http://www.w3.org/2000/svg"));  // the SVG namespace only
    EXPECT_EQ(f.html.find("https://"), std::string::npos);
    EXPECT_NE(f.markdown.find("```mermaid\nxychart-beta"), std::string::npos);
    // JUnit: the feasibility case plus the two gates, none failed.
    EXPECT_NE(f.junit.find("<testsuite name=\"tiny-8b\" tests=\"3\" failures=\"0\">"), std::string::npos) << f.junit;
}

namespace {
struct CommaDecimal : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
};
}  // namespace

TEST(Report, SameInputsSameBytesInAnyLocale) {
    const ScenarioSpec s = load_scenario_file(src("scenarios/rag-128k-8b.yaml"));
    const CapacityFiles a = render_capacity_report(build_capacity_report(s), "test");
    const std::locale old = std::locale::global(std::locale(std::locale::classic(), new CommaDecimal));
    const CapacityFiles b = render_capacity_report(build_capacity_report(s), "test");
    std::locale::global(old);
    EXPECT_EQ(a.html, b.html);
    EXPECT_EQ(a.markdown, b.markdown);
    EXPECT_EQ(a.json, b.json);
    EXPECT_EQ(a.csv, b.csv);
    EXPECT_EQ(a.junit, b.junit);
}

TEST(Report, TheCommittedReportsAreCurrent) {
    // `memtax report` (the README's main job) writes scenarios/*.yaml into reports/; rerun into a
    // temporary folder from the repository root and compare every file byte for byte.
    const fs::path out = temp_dir("reports");
    const auto cwd = fs::current_path();
    fs::current_path(MEMTAX_SOURCE_DIR);
    Result r = run_command({"report", "--out", out.string()});
    fs::current_path(cwd);
    ASSERT_EQ(r.code, 0) << r.err;
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(out)) {
        const fs::path committed = fs::path(MEMTAX_SOURCE_DIR) / "reports" / e.path().filename();
        ASSERT_TRUE(fs::exists(committed)) << committed << ": run `build/memtax report` and commit reports/";
        EXPECT_EQ(slurp(e.path()), slurp(committed)) << committed << " is stale: run `build/memtax report` and commit reports/";
        ++files;
    }
    EXPECT_GE(files, 3u * 5 + 2);
    fs::remove_all(out);
}

TEST(Report, HeadlessChromiumRendersThePage) {
    // Debian's chromium (installed by scripts/setup.sh) renders the committed page; the screenshot
    // must not be blank and the DOM must hold the three charts.
    const std::string page = src("reports/long-context-chat-70b.html");
    ASSERT_TRUE(fs::exists(page));
    const fs::path dir = temp_dir("chromium");
    const std::string shot = (dir / "shot.png").string();
    const std::string flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=" + (dir / "profile").string();
    // `timeout`: a browser that hangs fails the test instead of the job.
    const std::string cmd = "timeout 120 chromium " + flags + " --window-size=1280,2400 --screenshot=" + shot + " file://" + page + " > " +
                            (dir / "log").string() + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "chromium failed (is it installed? scripts/setup.sh installs it): " << slurp(dir / "log");
    cairo_surface_t* img = cairo_image_surface_create_from_png(shot.c_str());
    ASSERT_EQ(cairo_surface_status(img), CAIRO_STATUS_SUCCESS) << "no screenshot";
    const int w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img), stride = cairo_image_surface_get_stride(img);
    const unsigned char* px = cairo_image_surface_get_data(img);
    size_t ink = 0, coloured = 0;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const unsigned char* p = px + y * stride + x * 4;  // BGRA
            ink += p[0] < 200 || p[1] < 200 || p[2] < 200;
            coloured += std::abs(int(p[0]) - int(p[2])) > 60 || std::abs(int(p[1]) - int(p[2])) > 60;
        }
    cairo_surface_destroy(img);
    EXPECT_GT(ink, static_cast<size_t>(w) * h / 100) << "the screenshot is (nearly) blank";
    EXPECT_GT(coloured, 2000u) << "no coloured chart lines or bars in the screenshot";
    const std::string dom = dump_dom(flags, page);
    size_t svgs = 0;
    for (size_t at = dom.find("<svg"); at != std::string::npos; at = dom.find("<svg", at + 1)) ++svgs;
    EXPECT_EQ(svgs, 3u);
    EXPECT_NE(dom.find("class=\"series\""), std::string::npos);
    EXPECT_NE(dom.find("class=\"part\""), std::string::npos);
    // Prefill and decode points are told apart by their markers (circles, squares).
    EXPECT_NE(dom.find("class=\"op prefill\""), std::string::npos);
    EXPECT_NE(dom.find("class=\"op decode\""), std::string::npos);
    // A vLLM scenario charts what vLLM does (sequences its pool holds), not transformers' static
    // batch's memory against context.
    EXPECT_NE(dom.find("Sequences held against context (vLLM)"), std::string::npos);
    EXPECT_EQ(dom.find("Memory against context"), std::string::npos);
    fs::remove_all(dir);
}

// Every committed page, rendered by headless Chromium with a script appended that measures each
// chart's labels as laid out (getBoundingClientRect, after the fonts are applied): no two labels
// of one chart — tick labels, axis titles, legend entries, annotations — may overlap by more than
// a pixel each way. The script writes what it found into the DOM, which --dump-dom returns.
TEST(Report, NoTwoLabelsOfAChartOverlapWhenRendered) {
    const fs::path dir = temp_dir("chromium-labels");
    const std::string flags =
        "--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 --user-data-dir=" + (dir / "profile").string();
    const std::string probe = R"(<script>
(function () {
  var out = [];
  document.querySelectorAll('svg').forEach(function (svg, si) {
    var texts = Array.prototype.filter.call(svg.querySelectorAll('text'), function (t) { return t.textContent.trim() !== ''; });
    var boxes = texts.map(function (t) { return t.getBoundingClientRect(); });
    for (var i = 0; i < texts.length; ++i)
      for (var j = i + 1; j < texts.length; ++j) {
        var a = boxes[i], b = boxes[j];
        var w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1) out.push('overlap in chart ' + si + ': "' + texts[i].textContent + '" and "' + texts[j].textContent + '"');
      }
    out.push('chart ' + si + ': ' + texts.length + ' labels');
  });
  var pre = document.createElement('pre');
  pre.id = 'memtax-label-check';
  pre.textContent = out.join(' | ');
  document.body.appendChild(pre);
})();
</script>)";
    size_t pages = 0;
    for (const auto& e : fs::directory_iterator(src("reports"))) {
        if (e.path().extension() != ".html") continue;
        std::string html = slurp(e.path());
        const size_t body = html.rfind("</body>");
        ASSERT_NE(body, std::string::npos) << e.path();
        html.insert(body, probe);
        const fs::path page = dir / e.path().filename();
        std::ofstream(page) << html;
        const std::string dom = dump_dom(flags, page.string());
        const size_t at = dom.find("<pre id=\"memtax-label-check\">");
        ASSERT_NE(at, std::string::npos) << e.path() << ": the check did not run (is chromium installed?)";
        const std::string found = dom.substr(at, dom.find("</pre>", at) - at);
        EXPECT_EQ(found.find("overlap"), std::string::npos) << e.path().filename() << ": " << found;
        if (html.find("<svg") != std::string::npos) EXPECT_NE(found.find("labels"), std::string::npos) << e.path();
        ++pages;
    }
    EXPECT_GE(pages, 5u);
    fs::remove_all(dir);
}

// --- the CI gate ---------------------------------------------------------------------------------

TEST(Check, PassesAgainstTheCommittedBaselineAndCatchesARegression) {
    const auto cwd = fs::current_path();
    fs::current_path(MEMTAX_SOURCE_DIR);
    Result ok = run_command({"check", "--baseline", "reports"});
    EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
    EXPECT_NE(ok.out.find("result: pass"), std::string::npos);
    // A baseline that promised twice the throughput: now is 50% worse, past the 2% tolerance.
    const fs::path dir = temp_dir("baseline");
    auto j = nlohmann::json::parse(slurp("reports/rag-128k-8b.json"));
    j["plan"]["plans"]["rows"][0]["tokens_per_s"] = j["plan"]["plans"]["rows"][0]["tokens_per_s"].get<double>() * 2;
    std::ofstream(dir / "rag-128k-8b.json") << j.dump();
    Result bad = run_command({"check", "scenarios/rag-128k-8b.yaml", "--baseline", (dir / "rag-128k-8b.json").string()});
    EXPECT_EQ(bad.code, 1) << bad.out << bad.err;
    EXPECT_NE(bad.out.find("REGRESSED"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("-50.00%"), std::string::npos) << bad.out;
    // A failing gate fails the check: the scenario's max_tpot_s tightened below any plan.
    std::string y = slurp("scenarios/long-context-chat-70b.yaml");
    y.replace(y.find("  max_tpot_s: 0.06"), 17, "  max_tpot_s: 0.000001");
    std::ofstream(dir / "tight.yaml") << y;
    Result gate = run_command({"check", (dir / "tight.yaml").string()});
    EXPECT_EQ(gate.code, 1) << gate.out << gate.err;
    EXPECT_NE(gate.out.find("FAIL"), std::string::npos);
    // A file that is not a report is bad input.
    std::ofstream(dir / "x.json") << "{}";
    Result input = run_command({"check", "scenarios/rag-128k-8b.yaml", "--baseline", (dir / "x.json").string()});
    EXPECT_EQ(input.code, 2);
    EXPECT_NE(input.err.find("not a memtax report"), std::string::npos) << input.err;
    fs::current_path(cwd);
    fs::remove_all(dir);
}

// A scenario that cannot be planned (here: prompts past the model's context) fails its own
// row in `check` and is named by `report`, which still writes the others and exits 2.
TEST(Check, OneScenarioThatCannotBePlannedDoesNotHideTheOthers) {
    const auto cwd = fs::current_path();
    fs::current_path(MEMTAX_SOURCE_DIR);
    const fs::path dir = temp_dir("isolate");
    std::string y = slurp("scenarios/rag-128k-8b.yaml");
    y.replace(y.find("name: rag-128k-8b"), 17, "name: unpriced");
    y.replace(y.find("max: 127k}"), 10, "max: 200k}");
    std::ofstream(dir / "unpriced.yaml") << y;
    const std::string bad = (dir / "unpriced.yaml").string();
    Result check = run_command({"check", "scenarios/long-context-chat-70b.yaml", bad});
    EXPECT_EQ(check.code, 1) << check.out << check.err;
    EXPECT_NE(check.out.find("unpriced"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("could not be planned"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("long-context-chat-70b  must_fit"), std::string::npos) << check.out;
    Result rep = run_command({"report", "scenarios/long-context-chat-70b.yaml", bad, "--out", (dir / "out").string()});
    EXPECT_EQ(rep.code, 2) << rep.out << rep.err;
    EXPECT_TRUE(fs::exists(dir / "out" / "long-context-chat-70b.json"));
    EXPECT_FALSE(fs::exists(dir / "out" / "unpriced.json"));
    EXPECT_NE(rep.err.find("unpriced (" + bad + "): not reported"), std::string::npos) << rep.err;
    EXPECT_NE(rep.out.find("wrote 1 report and the index"), std::string::npos) << rep.out;
    fs::current_path(cwd);
    fs::remove_all(dir);
}

// The plan moved to another GPU kind: check says so first, and the per-GPU figures that do not
// compare across kinds are not regressions. A scenario without a baseline is an error unless
// --allow-new; figures print in human units with exact bytes.
TEST(Check, NamesAChangedGpuKindFirstAndRefusesAMissingBaseline) {
    const auto cwd = fs::current_path();
    fs::current_path(MEMTAX_SOURCE_DIR);
    const fs::path dir = temp_dir("kind");
    // The baseline says 2 × h100-sxm at TP 8, DP 1 with 100 GiB a GPU; the plan now is another GPU
    // kind and layout.
    auto j = nlohmann::json::parse(slurp("reports/long-context-chat-70b.json"));
    auto& row = j["plan"]["plans"]["rows"][0];
    row["gpu"] = "h100-sxm";
    row["gpus"] = 2;
    row["tp"] = 8;
    row["dp"] = 1;
    row["total_bytes"] = 107374182400.0;
    std::ofstream(dir / "long-context-chat-70b.json") << j.dump();
    Result r = run_command({"check", "scenarios/long-context-chat-70b.yaml", "--baseline", dir.string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;  // nothing comparable got worse
    const size_t kind = r.out.find("GPU kind");
    ASSERT_NE(kind, std::string::npos) << r.out;
    EXPECT_NE(r.out.find("h100-sxm", kind), std::string::npos);
    EXPECT_LT(kind, r.out.find("layout"));
    EXPECT_LT(r.out.find("layout"), r.out.find("bytes per GPU  "));
    EXPECT_NE(r.out.find("TP 8 × PP 1 × DP 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("not comparable (GPU kind changed)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("REGRESSED"), std::string::npos) << r.out;
    // 100 GiB exactly, with its bytes; no exponent notation anywhere.
    EXPECT_NE(r.out.find("100.0 GiB (107,374,182,400 B)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("e+"), std::string::npos) << r.out;
    // No baseline for this scenario in the folder: an error naming the fix, or a warning with --allow-new.
    Result missing = run_command({"check", "scenarios/rag-128k-8b.yaml", "--baseline", dir.string()});
    EXPECT_EQ(missing.code, 2) << missing.out;
    EXPECT_NE(missing.err.find("no baseline report for scenario rag-128k-8b"), std::string::npos) << missing.err;
    EXPECT_NE(missing.err.find("--allow-new"), std::string::npos) << missing.err;
    Result allowed = run_command({"check", "scenarios/rag-128k-8b.yaml", "--baseline", dir.string(), "--allow-new"});
    EXPECT_EQ(allowed.code, 0) << allowed.out << allowed.err;
    EXPECT_NE(allowed.err.find("warning: rag-128k-8b: no baseline report"), std::string::npos) << allowed.err;
    EXPECT_NE(allowed.out.find("new scenario"), std::string::npos) << allowed.out;
    // Without --baseline the section says so.
    Result gates_only = run_command({"check", "scenarios/rag-128k-8b.yaml"});
    EXPECT_NE(gates_only.out.find("no --baseline given"), std::string::npos) << gates_only.out;
    fs::current_path(cwd);
    fs::remove_all(dir);
}

// Streamed byte cells show GiB exactly as fmt's "{:.2f}" does (their integer path is checked
// against fmt itself): ties of the exact quotient round to even (2^30/8 bytes is 0.125 GiB:
// "0.12"; 3·2^30/8 is 0.375: "0.38"), and values past 2^53 take fmt's own path.
TEST(DocumentStream, BytesShowAsFmtWritesGiB) {
    const std::vector<StreamColumn> cols = {{"b", "b", Hint::Bytes}, {"n", "n", Hint::Count}, {"f", "f", Hint::Flag}};
    std::vector<std::uint64_t> values = {0,
                                         1,
                                         1u << 29,
                                         (1u << 30) / 8,
                                         3 * (1u << 30) / 8,
                                         5 * (1u << 30) / 8,
                                         (1ull << 30) - 1,
                                         1ull << 30,
                                         17076928512ull,
                                         (1ull << 53) - 1,
                                         1ull << 53,
                                         ~0ull};
    std::uint64_t x = 88172645463325252ull;  // xorshift64: values over every magnitude
    for (int i = 0; i < 20000; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push_back(x >> (x % 40));
    }
    for (std::uint64_t v : values) {
        Table t = stream_table(cols);
        const std::uint64_t row[] = {v, v, v & 1};
        stream_row(t, cols, row);
        ASSERT_EQ(t.text[0][0], fmt::format("{:.2f}", static_cast<double>(v) / 1073741824.0)) << v;
        ASSERT_EQ(t.raw[0][0], std::to_string(v));
        ASSERT_EQ(t.text[0][1], group_digits(v));
        ASSERT_EQ(t.text[0][2], v & 1 ? "yes" : "no");
        ASSERT_EQ(t.raw[0][2], v & 1 ? "true" : "false");
    }
}

// Mermaid's axis is linear: the memory chart stops at twice the usable capacity so the quadratic
// eager total does not flatten every line. rag-128k-8b's best plan is on an H200 (usable
// 150,109,880,320 B = 139.80 GiB): the axis tops at ceil(279.6) = 280 GiB, and the eager total at
// 16k and above sits on it.
TEST(Report, MermaidMemoryChartIsOnAReadableScale) {
    const std::string md = slurp(src("reports/rag-128k-8b.md"));
    EXPECT_NE(md.find("y-axis \"GiB\" 0 --> 280\n"), std::string::npos) << md;
    EXPECT_NE(md.find("280.00, 280.00]"), std::string::npos) << md;
    EXPECT_NE(md.find("The axis stops at twice the usable capacity (280 GiB)"), std::string::npos);
    // The vLLM scenario's chart is sequences held, axis to min(4 × what a replica runs, max_num_seqs
    // 256): its best plan has 2 replicas of the 64 users, 32 each, so 128.
    const std::string v = slurp(src("reports/long-context-chat-70b.md"));
    EXPECT_NE(v.find("| 1 | b200 | 4 | 2 | 1 | 2 |"), std::string::npos) << v;
    EXPECT_NE(v.find("y-axis \"sequences\" 0 --> 128\n"), std::string::npos) << v;
    EXPECT_EQ(v.find("## Memory against context"), std::string::npos);
}

// Nothing satisfies a scenario (a TTFT no plan reaches): its page still charts the closest
// candidate, says so, and names the relaxation that would make a candidate feasible.
TEST(Report, AnInfeasibleScenarioGetsItsChartsAndWhatToRelax) {
    const fs::path dir = temp_dir("infeasible");
    std::string y = slurp(src("scenarios/long-context-chat-70b.yaml"));
    y.replace(y.find("  ttft_s: 30"), 12, "  ttft_s: 0.001");
    y.replace(y.find("name: long-context-chat-70b"), 27, "name: tight");
    std::ofstream(dir / "tight.yaml") << y;
    Result r = run_command({"report", (dir / "tight.yaml").string(), "--out", (dir / "out").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string html = slurp(dir / "out" / "tight.html");
    EXPECT_NE(html.find("Gates: <span class=\"fail\">FAILED</span>"), std::string::npos);
    EXPECT_NE(html.find("Sequences held against context (vLLM)"), std::string::npos);
    EXPECT_NE(html.find("(closest candidate, infeasible: "), std::string::npos);
    EXPECT_NE(html.find("relaxing TTFT alone to "), std::string::npos);
    size_t svgs = 0;
    for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) ++svgs;
    EXPECT_GE(svgs, 2u);  // the sequences chart and the roofline (no top plans to stack)
    fs::remove_all(dir);
}
