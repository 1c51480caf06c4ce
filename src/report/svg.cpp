#include "report/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace memtax::svg {
namespace {

constexpr int kLeft = 70, kRight = 250, kTop = 34, kBottom = 44;  // plot margins; the legend on the right

std::string num(double v) { return fmt::format("{:.2f}", v); }

std::string default_label(double v) {
    if (v == 0) return "0";
    return fmt::format("{:.3g}", v);
}

struct Scale {
    double lo = 0, hi = 1;
    bool log = false;
    double px0 = 0, px1 = 1;  // pixel range
    double at(double v) const {
        const double a = log ? std::log10(v) : v, l = log ? std::log10(lo) : lo, h = log ? std::log10(hi) : hi;
        const double t = h > l ? (a - l) / (h - l) : 0.5;
        return px0 + t * (px1 - px0);
    }
};

// Ticks: powers of `base` within [lo, hi] on a log axis; five even steps on a linear one.
std::vector<double> ticks(const Scale& s, double base) {
    std::vector<double> t;
    if (s.log) {
        for (double v = std::pow(base, std::floor(std::log(s.lo) / std::log(base))); v <= s.hi * (1 + 1e-9); v *= base)
            if (v >= s.lo * (1 - 1e-9)) t.push_back(v);
        while (t.size() > 12) {  // thin to at most 12
            std::vector<double> half;
            for (size_t i = 0; i < t.size(); i += 2) half.push_back(t[i]);
            t = half;
        }
    } else {
        for (int i = 0; i <= 5; ++i) t.push_back(s.lo + (s.hi - s.lo) * i / 5.0);
    }
    return t;
}

// An x tick label centred under the axis, except at its ends, where it would run past the
// y axis's own labels (at the origin) or out of the chart (at the right): it starts or ends there.
const char* x_anchor(double px, int width) {
    if (px <= kLeft + 0.5) return "start";
    if (px >= width - kRight - 0.5) return "end";
    return "middle";
}

void bounds(const std::vector<Series>& series, bool xlog, bool ylog, double& xlo, double& xhi, double& ylo, double& yhi) {
    xlo = ylo = std::numeric_limits<double>::infinity();
    xhi = yhi = -std::numeric_limits<double>::infinity();
    for (const auto& s : series)
        for (const auto& [x, y] : s.points) {
            if ((xlog && x <= 0) || (ylog && y <= 0)) continue;
            xlo = std::min(xlo, x);
            xhi = std::max(xhi, x);
            ylo = std::min(ylo, y);
            yhi = std::max(yhi, y);
        }
    if (!std::isfinite(xlo)) xlo = 1, xhi = 2;
    if (!std::isfinite(ylo)) ylo = 1, yhi = 2;
    if (!ylog) ylo = std::min(ylo, 0.0);
    if (ylog) {
        ylo = std::pow(10, std::floor(std::log10(ylo)));
        yhi = std::pow(10, std::ceil(std::log10(yhi)));
    }
    if (xhi <= xlo) xhi = xlo * 2 + 1;
    if (yhi <= ylo) yhi = ylo + 1;
}

std::string header(int w, int h, const std::string& title) {
    return fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" "
        "font-size=\"11\" role=\"img\" aria-label=\"{}\">\n<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n"
        "<text x=\"{}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        w, h, w, h, escape(title), w, h, kLeft, escape(title));
}

std::string legend(int x, int y, const std::vector<std::pair<std::string, std::pair<std::string, bool>>>& items) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
        const int yy = y + static_cast<int>(i) * 16;
        out += fmt::format(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"{}/>"
            "<text x=\"{}\" y=\"{}\">{}</text>\n",
            x, yy, x + 18, yy, items[i].second.first, items[i].second.second ? " stroke-dasharray=\"5,3\"" : "", x + 24, yy + 4,
            escape(items[i].first));
    }
    return out;
}

}  // namespace

std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string line_chart(const std::string& title, const Axis& x, const Axis& y, const std::vector<Series>& series, int width, int height) {
    double xlo, xhi, ylo, yhi;
    bounds(series, x.log, y.log, xlo, xhi, ylo, yhi);
    const Scale sx{xlo, xhi, x.log, static_cast<double>(kLeft), static_cast<double>(width - kRight)};
    const Scale sy{ylo, yhi, y.log, static_cast<double>(height - kBottom), static_cast<double>(kTop)};
    std::string out = header(width, height, title);
    out += fmt::format(
        "<g class=\"axes\" stroke=\"#888\">\n<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n<line x1=\"{}\" y1=\"{}\" x2=\"{}\" "
        "y2=\"{}\"/>\n</g>\n",
        kLeft, height - kBottom, width - kRight, height - kBottom, kLeft, kTop, kLeft, height - kBottom);
    for (double t : ticks(sx, 2)) {
        const double px = sx.at(t);
        out += fmt::format(
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#eee\"/><text x=\"{0}\" y=\"{3}\" "
            "text-anchor=\"{5}\">{4}</text>\n",
            num(px), kTop, height - kBottom, height - kBottom + 14, escape(x.format ? x.format(t) : default_label(t)), x_anchor(px, width));
    }
    for (double t : ticks(sy, 10)) {
        const double py = sy.at(t);
        out += fmt::format(
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#eee\"/><text x=\"{3}\" y=\"{4}\" text-anchor=\"end\">{5}</text>\n",
            kLeft, num(py), width - kRight, kLeft - 4, num(py + 4), escape(y.format ? y.format(t) : default_label(t)));
    }
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (kLeft + width - kRight) / 2, height - 8,
                       escape(x.label));
    out += fmt::format("<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {0})\">{1}</text>\n",
                       (kTop + height - kBottom) / 2, escape(y.label));
    std::vector<std::pair<std::string, std::pair<std::string, bool>>> items;
    for (const auto& s : series) {
        std::string path;
        for (const auto& [px, py] : s.points) {
            if ((x.log && px <= 0) || (y.log && py <= 0)) continue;
            path += fmt::format("{}{},{}", path.empty() ? "M" : " L", num(sx.at(px)), num(sy.at(py)));
        }
        if (path.empty()) continue;
        out += fmt::format("<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}><title>{}</title></path>\n",
                           path, s.color, s.dashed ? " stroke-dasharray=\"5,3\"" : "", escape(s.name));
        items.push_back({s.name, {s.color, s.dashed}});
    }
    out += legend(width - kRight + 12, kTop + 6, items);
    return out + "</svg>\n";
}

std::string stacked_bars(const std::string& title, const std::string& unit, const std::vector<std::string>& names,
                         const std::vector<std::string>& colors, const std::vector<Stack>& stacks, int width) {
    const int bar = 22, gap = 10, label_w = 200;
    const int height = kTop + static_cast<int>(stacks.size()) * (bar + gap) + kBottom;
    double hi = 0;
    for (const auto& s : stacks) {
        double sum = 0;
        for (double p : s.parts) sum += std::max(p, 0.0);
        hi = std::max({hi, sum, s.capacity});
    }
    if (hi <= 0) hi = 1;
    const Scale sx{0, hi, false, static_cast<double>(label_w), static_cast<double>(width - kRight)};
    std::string out = header(width, height, title);
    for (size_t i = 0; i < stacks.size(); ++i) {
        const int y = kTop + static_cast<int>(i) * (bar + gap);
        out +=
            fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", label_w - 6, y + bar / 2 + 4, escape(stacks[i].label));
        double at = 0;
        for (size_t p = 0; p < stacks[i].parts.size() && p < names.size(); ++p) {
            const double v = std::max(stacks[i].parts[p], 0.0);
            if (v <= 0) continue;
            out += fmt::format(
                "<rect class=\"part\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}: {} {}</title></rect>\n",
                num(sx.at(at)), y, num(sx.at(at + v) - sx.at(at)), bar, colors[p % colors.size()], escape(names[p]),
                fmt::format("{:.2f}", v), escape(unit));
            at += v;
        }
        if (stacks[i].capacity > 0)
            out += fmt::format(
                "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#000\" stroke-width=\"2\"><title>usable {3} "
                "{4}</title></line>\n",
                num(sx.at(stacks[i].capacity)), y - 3, y + bar + 3, fmt::format("{:.2f}", stacks[i].capacity), escape(unit));
    }
    const int axis_y = height - kBottom + 4;
    for (double t : ticks(sx, 10))
        out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num(sx.at(t)), axis_y + 10, default_label(t));
    out +=
        fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (label_w + width - kRight) / 2, height - 6, escape(unit));
    std::vector<std::pair<std::string, std::pair<std::string, bool>>> items;
    for (size_t p = 0; p < names.size(); ++p) items.push_back({names[p], {colors[p % colors.size()], false}});
    items.push_back({"usable capacity", {"#000000", false}});
    out += legend(width - kRight + 12, kTop + 6, items);
    return out + "</svg>\n";
}

std::string roofline(const std::string& title, double peak_flops, double bandwidth, const std::vector<RoofPoint>& points, int width,
                     int height) {
    double ilo = 0.1, ihi = 1e4, rlo = 1e9, rhi = peak_flops * 2;
    for (const auto& p : points)
        if (p.intensity > 0 && p.rate > 0) {
            ilo = std::min(ilo, p.intensity / 2);
            ihi = std::max(ihi, p.intensity * 2);
            rlo = std::min(rlo, p.rate / 2);
        }
    ilo = std::pow(10, std::floor(std::log10(ilo)));
    ihi = std::pow(10, std::ceil(std::log10(ihi)));
    rlo = std::pow(10, std::floor(std::log10(rlo)));
    rhi = std::pow(10, std::ceil(std::log10(rhi)));
    const Scale sx{ilo, ihi, true, static_cast<double>(kLeft), static_cast<double>(width - kRight)};
    const Scale sy{rlo, rhi, true, static_cast<double>(height - kBottom), static_cast<double>(kTop)};
    std::string out = header(width, height, title);
    for (double t : ticks(sx, 10))
        out += fmt::format(
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#eee\"/><text x=\"{0}\" y=\"{3}\" "
            "text-anchor=\"{5}\">{4}</text>\n",
            num(sx.at(t)), kTop, height - kBottom, height - kBottom + 14, default_label(t), x_anchor(sx.at(t), width));
    for (double t : ticks(sy, 10))
        out += fmt::format(
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#eee\"/><text x=\"{3}\" y=\"{4}\" text-anchor=\"end\">{5}</text>\n",
            kLeft, num(sy.at(t)), width - kRight, kLeft - 4, num(sy.at(t) + 4), default_label(t));
    // The roof: bandwidth × intensity up to the ridge, then the peak.
    const double ridge = peak_flops / bandwidth;
    std::string roof = fmt::format("M{},{}", num(sx.at(ilo)), num(sy.at(std::max(rlo, bandwidth * ilo))));
    if (ridge > ilo && ridge < ihi) roof += fmt::format(" L{},{}", num(sx.at(ridge)), num(sy.at(peak_flops)));
    roof += fmt::format(" L{},{}", num(sx.at(ihi)), num(sy.at(std::min(peak_flops, bandwidth * ihi))));
    out += fmt::format(
        "<path class=\"roof\" d=\"{}\" fill=\"none\" stroke=\"#333\" stroke-width=\"2\"><title>roof: {:.3g} FLOP/s peak, {:.3g} "
        "B/s</title></path>\n",
        roof, peak_flops, bandwidth);
    // One colour per op kind (prefill and decode of a kind share it), one marker per step: a
    // circle for prefill, a square for decode. Twelve colours, so the kinds of both steps stay apart.
    const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                             "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"};
    std::vector<std::string> kinds;
    std::vector<std::pair<std::string, std::pair<std::string, bool>>> items;
    for (const auto& p : points) {
        if (p.intensity <= 0 || p.rate <= 0) continue;
        const bool decode = p.name.rfind("decode ", 0) == 0;
        const std::string kind = p.name.substr(p.name.find(' ') == std::string::npos ? 0 : p.name.find(' ') + 1);
        size_t k = std::find(kinds.begin(), kinds.end(), kind) - kinds.begin();
        if (k == kinds.size()) kinds.push_back(kind);
        const char* color = palette[k % (sizeof palette / sizeof *palette)];
        const double x = sx.at(p.intensity), y = sy.at(p.rate);
        const std::string tip = fmt::format("<title>{}: {:.3g} FLOP/B, {:.3g} FLOP/s</title>", escape(p.name), p.intensity, p.rate);
        if (decode)
            out += fmt::format("<rect class=\"op decode\" x=\"{}\" y=\"{}\" width=\"9\" height=\"9\" fill=\"{}\">{}</rect>\n", num(x - 4.5),
                               num(y - 4.5), color, tip);
        else
            out += fmt::format("<circle class=\"op prefill\" cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{}\">{}</circle>\n", num(x), num(y), color,
                               tip);
        if (std::find_if(items.begin(), items.end(), [&](const auto& i) { return i.first == kind; }) == items.end())
            items.push_back({kind, {color, false}});
    }
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"start\">● prefill   ■ decode</text>\n", kLeft + 6, kTop + 14);
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">arithmetic intensity (FLOP per byte)</text>\n",
                       (kLeft + width - kRight) / 2, height - 8);
    out += fmt::format("<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {0})\">achieved FLOP/s</text>\n",
                       (kTop + height - kBottom) / 2);
    out += legend(width - kRight + 12, kTop + 6, items);
    return out + "</svg>\n";
}

}  // namespace memtax::svg
