#pragma once
// Charts as SVG text, drawn by hand in this one module. Cairo (the charting library among our
// dependencies) draws SVG too, but its SVG surface turns every label into glyph outlines of
// whatever fonts the machine has, so the same report would differ from one machine to the
// next; these charts keep text as <text> (the browser's font) and print every coordinate with
// two decimals, so the same inputs give the same bytes anywhere.
#include <string>
#include <utility>
#include <vector>

namespace memtax::svg {

struct Series {
    std::string name;
    std::vector<std::pair<double, double>> points;  // (x, y); points with y <= 0 are left out on a log axis
    std::string color;                              // "#rrggbb"
    bool dashed = false;
};

struct Axis {
    std::string label;
    bool log = false;
    // Tick labels for a value (e.g. 1024 -> "1k"); empty: the value with up to 3 significant digits.
    std::string (*format)(double) = nullptr;
};

// Lines over (x, y) with a legend. Log axes put ticks at powers of two (x) or ten (y).
std::string line_chart(const std::string& title, const Axis& x, const Axis& y, const std::vector<Series>& series, int width = 960,
                       int height = 380);

struct Stack {
    std::string label;
    std::vector<double> parts;  // in the order of `names`
    double capacity = 0;        // drawn as a marker when > 0
};

// Horizontal stacked bars, one per stack, parts coloured by `colors`, with a legend.
std::string stacked_bars(const std::string& title, const std::string& unit, const std::vector<std::string>& names,
                         const std::vector<std::string>& colors, const std::vector<Stack>& stacks, int width = 960);

struct RoofPoint {
    std::string name;
    double intensity = 0;  // FLOP per byte
    double rate = 0;       // achieved FLOP/s
};

// The roofline: min(peak, bandwidth × intensity) on log-log axes, and the points.
std::string roofline(const std::string& title, double peak_flops, double bandwidth, const std::vector<RoofPoint>& points, int width = 960,
                     int height = 380);

// Text for SVG/HTML: & < > " escaped.
std::string escape(const std::string& s);

}  // namespace memtax::svg
