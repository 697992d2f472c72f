// report.html: a self-contained page (inline CSS and SVG; no scripts, fonts or network) drawn from
// a run's summary.json (docs/FORMATS.md): per operator the score histogram with the threshold or
// top_fraction cutoff, kept/dropped counts and quantiles; errors by reason with example records;
// throughput over time and per rank; the models used.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace clipshard {

// `text` with &, <, >, " and ' replaced by character references (safe in element content and in
// quoted attribute values). Invalid UTF-8 passes through byte for byte (the browser shows U+FFFD).
std::string html_escape(const std::string& text);

// The whole page for `summary`. Every string taken from the summary (paths, model names, reasons,
// messages) is escaped. Missing or mistyped fields are shown as absent, never an exception: the
// report must not fail a run that has already finished.
std::string render_report(const nlohmann::json& summary);

}  // namespace clipshard
