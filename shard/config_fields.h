// Tables that map the keys of a JSON config object (docs/CONFIG.md) onto the fields of an options
// struct. Each component lists the keys it owns once, in one table beside its struct
// (decode_config_fields, image_source_config_fields, clip_processor_config_fields, the run's own in
// driver/run_config.cpp); that one row per key drives the unknown-key check, the parsing and the
// run's result fingerprint, so a key can never be accepted but not read, or read but left out of
// the fingerprint by forgetting a second list. The struct's member initialisers are the only
// defaults: a key that is absent leaves its field as it is.
//
// Errors are std::invalid_argument naming the key by its full dotted path:
//   config key "embedding_cache.enabled": must be true or false, got number
//   unknown config key "batch_sise" (known: batch_size, ...)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace clipshard {

// Throws std::invalid_argument("config key \"PATH\": WHAT").
[[noreturn]] void throw_config_error(const std::string& path, const std::string& what);

// Value readers. Each returns the value of `v` or throws (throw_config_error) naming `path`.
// A string; null reads as "".
std::string read_config_string(const nlohmann::json& v, const std::string& path);
bool read_config_bool(const nlohmann::json& v, const std::string& path);
// An integer in [min, max].
int64_t read_config_int(const nlohmann::json& v, const std::string& path, int64_t min, int64_t max);
// A number >= min (NaN refused).
double read_config_number(const nlohmann::json& v, const std::string& path, double min);
// A string or a list of strings.
std::vector<std::string> read_config_string_list(const nlohmann::json& v, const std::string& path);

// `object`'s keys must all be in `known`; else throws "unknown config key \"PREFIX+key\" (known:
// the sorted list)". `prefix` is "" at the top level, "embedding_cache." inside that object.
void check_config_keys(const nlohmann::json& object, const std::string& prefix,
                       const std::set<std::string>& known);

// One config key of an options struct `O`.
template <class O>
struct ConfigField {
  std::string key;  // as written in the config (docs/CONFIG.md)
  // Reads and checks `value` into `*options`; `path` is the key's full dotted name for errors.
  std::function<void(const nlohmann::json& value, const std::string& path, O* options)> read;
  // The field as a config would write it (for the documented defaults and the fingerprint).
  std::function<nlohmann::json(const O& options)> value;
  // Adds the field's entries to the run's result fingerprint (the settings that change what the
  // shards compute, kept in state.json); empty when the field does not change them.
  std::function<void(const O& options, nlohmann::json* fingerprint)> fingerprint;

  // This field in the fingerprint as `name` (default: its key) = value(options).
  ConfigField in_fingerprint(std::string name = "") && {
    if (name.empty()) name = key;
    fingerprint = [name, value = value](const O& o, nlohmann::json* fp) { (*fp)[name] = value(o); };
    return std::move(*this);
  }
};

template <class O>
using ConfigFields = std::vector<ConfigField<O>>;

namespace config_internal {
inline nlohmann::json to_config_json(const std::filesystem::path& p) { return p.string(); }
inline nlohmann::json to_config_json(const std::vector<std::filesystem::path>& list) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : list) out.push_back(p.string());
  return out;
}
template <class T>
nlohmann::json to_config_json(const T& v) {
  return nlohmann::json(v);
}
}  // namespace config_internal

// A key stored in `member`, read by `read(value, path)` (a value reader above or a lambda); its
// value is the member (paths as their string).
template <class O, class T, class Read>
ConfigField<O> config_field(std::string key, T O::*member, Read read) {
  ConfigField<O> f;
  f.key = std::move(key);
  f.read = [member, read](const nlohmann::json& v, const std::string& path, O* o) {
    o->*member = static_cast<T>(read(v, path));
  };
  f.value = [member](const O& o) { return config_internal::to_config_json(o.*member); };
  return f;
}

// Readers for config_field, bound to their limits.
inline auto config_int(int64_t min, int64_t max) {
  return [min, max](const nlohmann::json& v, const std::string& path) {
    return read_config_int(v, path, min, max);
  };
}
inline auto config_number(double min) {
  return [min](const nlohmann::json& v, const std::string& path) {
    return read_config_number(v, path, min);
  };
}
inline auto config_bool() { return read_config_bool; }
inline auto config_string() { return read_config_string; }
// A list of strings stored as a list of T (std::string or a path).
template <class T>
auto config_list_of() {
  return [](const nlohmann::json& v, const std::string& path) {
    std::vector<T> out;
    for (auto& s : read_config_string_list(v, path)) out.emplace_back(std::move(s));
    return out;
  };
}

// Reads the keys of `fields` that `object` has, in the object's key order; keys of no field are
// left alone (the caller checks them: a config's top level is shared by several components).
template <class O>
void read_config_fields(const ConfigFields<O>& fields, const nlohmann::json& object,
                        const std::string& prefix, O* options) {
  std::map<std::string, const ConfigField<O>*> by_key;
  for (const auto& f : fields) by_key[f.key] = &f;
  for (auto it = object.begin(); it != object.end(); ++it) {
    auto field = by_key.find(it.key());
    if (field != by_key.end()) field->second->read(it.value(), prefix + it.key(), options);
  }
}

// A whole object: every key must be one of `fields` (check_config_keys), then read. What the
// components' from_json do.
template <class O>
void read_config_object(const ConfigFields<O>& fields, const nlohmann::json& object,
                        const std::string& prefix, O* options) {
  if (!object.is_object()) {
    if (prefix.empty()) throw std::invalid_argument("the config must be a JSON object");
    throw_config_error(prefix.substr(0, prefix.size() - 1), "must be an object");
  }
  std::set<std::string> known;
  for (const auto& f : fields) known.insert(f.key);
  check_config_keys(object, prefix, known);
  read_config_fields(fields, object, prefix, options);
}

// The fields' values as one object (a config that states every key of `fields`).
template <class O>
nlohmann::json config_values(const ConfigFields<O>& fields, const O& options) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : fields) out[f.key] = f.value(options);
  return out;
}

// Adds the fingerprint entries of `fields` to `*fingerprint`.
template <class O>
void add_config_fingerprint(const ConfigFields<O>& fields, const O& options,
                            nlohmann::json* fingerprint) {
  for (const auto& f : fields)
    if (f.fingerprint) f.fingerprint(options, fingerprint);
}

// The fields of a struct embedded in O, at O's level of the config (its keys sit beside O's
// own): `get` returns the embedded struct from an O, const or not (a generic lambda:
// `[](auto& c) -> auto& { return c.decode; }`).
template <class O, class Inner, class Get>
ConfigFields<O> embedded_config_fields(const ConfigFields<Inner>& inner, Get get) {
  ConfigFields<O> out;
  for (const auto& f : inner) {
    ConfigField<O> g;
    g.key = f.key;
    g.read = [read = f.read, get](const nlohmann::json& v, const std::string& path, O* o) {
      read(v, path, &get(*o));
    };
    g.value = [value = f.value, get](const O& o) { return value(get(o)); };
    if (f.fingerprint)
      g.fingerprint = [fp = f.fingerprint, get](const O& o, nlohmann::json* j) { fp(get(o), j); };
    out.push_back(std::move(g));
  }
  return out;
}

// A key whose value is an object holding the keys of `inner` (read_config_object, so its unknown
// keys are named "key.sub"); `get` as in embedded_config_fields. Its fingerprint entries are those
// of `inner`, added at the fingerprint's top level.
template <class O, class Inner, class Get>
ConfigField<O> config_object_field(std::string key, const ConfigFields<Inner>& inner, Get get) {
  ConfigField<O> f;
  f.key = std::move(key);
  f.read = [inner, get](const nlohmann::json& v, const std::string& path, O* o) {
    if (!v.is_object()) throw_config_error(path, "must be an object");
    read_config_object(inner, v, path + ".", &get(*o));
  };
  f.value = [inner, get](const O& o) { return config_values(inner, get(o)); };
  f.fingerprint = [inner, get](const O& o, nlohmann::json* j) {
    add_config_fingerprint(inner, get(o), j);
  };
  return f;
}

// `a` followed by `b`.
template <class O>
ConfigFields<O> operator+(ConfigFields<O> a, const ConfigFields<O>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace clipshard
