#include "shard/shard_stats.h"

#include <functional>
#include <stdexcept>

namespace clipshard {

namespace {

// Thrown by a field reader for a value of the wrong type; read_fields names the key.
struct WrongType {};

// Reads the fields of object `j` into `fields` (key -> reader); any other key is an error.
template <typename Fields>
void read_fields(const nlohmann::json& j, const Fields& fields, const std::string& where,
                 const std::string& source) {
  if (!j.is_object())
    throw std::runtime_error("shard statistics " + source + ": " + where + " is not an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto field = fields.find(it.key());
    if (field == fields.end())
      throw std::runtime_error("shard statistics " + source + ": unknown key \"" + where +
                               it.key() + "\"");
    try {
      field->second(it.value());
    } catch (const WrongType&) {  // a count that is a string, an object...
      throw std::runtime_error("shard statistics " + source + ": \"" + where + it.key() +
                               "\" has the wrong type");
    }
  }
}

}  // namespace

void ShardStats::add(const ShardStats& o) {
  lines += o.lines;
  rows += o.rows;
  blank_lines += o.blank_lines;
  error_lines += o.error_lines;
  error_rows += o.error_rows;
  for (const auto& [reason, n] : o.errors) errors[reason] += n;
  captions_truncated += o.captions_truncated;
  images_distinct += o.images_distinct;
  images_decoded += o.images_decoded;
  images_preprocessed += o.images_preprocessed;
  embeddings.image_computed += o.embeddings.image_computed;
  embeddings.image_reused += o.embeddings.image_reused;
  embeddings.text_computed += o.embeddings.text_computed;
  embeddings.text_reused += o.embeddings.text_reused;
  seconds.decode_cpu += o.seconds.decode_cpu;
  seconds.decode_wait += o.seconds.decode_wait;
  seconds.model += o.seconds.model;
  seconds.total += o.seconds.total;
}

nlohmann::json shard_stats_to_json(const ShardStats& s) {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [reason, n] : s.errors) errors[reason] = n;
  return {{"lines", s.lines},
          {"rows", s.rows},
          {"blank_lines", s.blank_lines},
          {"error_lines", s.error_lines},
          {"error_rows", s.error_rows},
          {"errors", errors},
          {"captions_truncated", s.captions_truncated},
          {"images",
           {{"distinct", s.images_distinct},
            {"decoded", s.images_decoded},
            {"preprocessed", s.images_preprocessed}}},
          {"embeddings",
           {{"image_computed", s.embeddings.image_computed},
            {"image_reused", s.embeddings.image_reused},
            {"text_computed", s.embeddings.text_computed},
            {"text_reused", s.embeddings.text_reused}}},
          {"seconds",
           {{"decode_cpu", s.seconds.decode_cpu},
            {"decode_wait", s.seconds.decode_wait},
            {"model", s.seconds.model},
            {"total", s.seconds.total}}}};
}

ShardStats shard_stats_from_json(const nlohmann::json& j, const std::string& source) {
  using Json = nlohmann::json;
  using Reader = std::function<void(const Json&)>;
  ShardStats s;
  auto count = [](int64_t* into) {
    return [into](const Json& v) {
      if (!v.is_number()) throw WrongType{};
      *into = v.get<int64_t>();
    };
  };
  auto time = [](double* into) {
    return [into](const Json& v) {
      if (!v.is_number()) throw WrongType{};
      *into = v.get<double>();
    };
  };
  const std::map<std::string, Reader> images = {{"distinct", count(&s.images_distinct)},
                                                {"decoded", count(&s.images_decoded)},
                                                {"preprocessed", count(&s.images_preprocessed)}};
  const std::map<std::string, Reader> embeddings = {
      {"image_computed", count(&s.embeddings.image_computed)},
      {"image_reused", count(&s.embeddings.image_reused)},
      {"text_computed", count(&s.embeddings.text_computed)},
      {"text_reused", count(&s.embeddings.text_reused)}};
  const std::map<std::string, Reader> seconds = {{"decode_cpu", time(&s.seconds.decode_cpu)},
                                                 {"decode_wait", time(&s.seconds.decode_wait)},
                                                 {"model", time(&s.seconds.model)},
                                                 {"total", time(&s.seconds.total)}};
  const std::map<std::string, Reader> top = {
      {"shard", [](const Json&) {}},
      {"rank", [](const Json&) {}},
      {"lines", count(&s.lines)},
      {"rows", count(&s.rows)},
      {"blank_lines", count(&s.blank_lines)},
      {"error_lines", count(&s.error_lines)},
      {"error_rows", count(&s.error_rows)},
      {"captions_truncated", count(&s.captions_truncated)},
      {"errors",
       [&](const Json& v) {
         if (!v.is_object())
           throw std::runtime_error("shard statistics " + source + ": \"errors\" is not an object");
         for (auto it = v.begin(); it != v.end(); ++it) {
           if (!it.value().is_number_integer())
             throw std::runtime_error("shard statistics " + source + ": \"errors." + it.key() +
                                      "\" is not a count");
           s.errors[it.key()] = it.value().get<int64_t>();
         }
       }},
      {"images", [&](const Json& v) { read_fields(v, images, "images.", source); }},
      {"embeddings", [&](const Json& v) { read_fields(v, embeddings, "embeddings.", source); }},
      {"seconds", [&](const Json& v) { read_fields(v, seconds, "seconds.", source); }},
  };
  read_fields(j, top, "", source);
  return s;
}

}  // namespace clipshard
