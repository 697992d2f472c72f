#include "shard/config_fields.h"

#include <stdexcept>

namespace clipshard {

using nlohmann::json;

void throw_config_error(const std::string& path, const std::string& what) {
  throw std::invalid_argument("config key \"" + path + "\": " + what);
}

std::string read_config_string(const json& v, const std::string& path) {
  if (v.is_null()) return "";
  if (!v.is_string())
    throw_config_error(path, std::string("must be a string, got ") + v.type_name());
  return v.get<std::string>();
}

bool read_config_bool(const json& v, const std::string& path) {
  if (!v.is_boolean())
    throw_config_error(path, std::string("must be true or false, got ") + v.type_name());
  return v.get<bool>();
}

int64_t read_config_int(const json& v, const std::string& path, int64_t min, int64_t max) {
  if (!v.is_number_integer())
    throw_config_error(path, std::string("must be an integer, got ") + v.type_name());
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max)
    throw_config_error(path, "must be between " + std::to_string(min) + " and " +
                                 std::to_string(max) + ", got " + std::to_string(x));
  return x;
}

double read_config_number(const json& v, const std::string& path, double min) {
  if (!v.is_number())
    throw_config_error(path, std::string("must be a number, got ") + v.type_name());
  const double x = v.get<double>();
  if (!(x >= min)) throw_config_error(path, "must be >= " + std::to_string(min));
  return x;
}

std::vector<std::string> read_config_string_list(const json& v, const std::string& path) {
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) throw_config_error(path, "must be a string or a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(read_config_string(e, path));
  return out;
}

void check_config_keys(const json& object, const std::string& prefix,
                       const std::set<std::string>& known) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw std::invalid_argument("unknown config key \"" + prefix + it.key() +
                                  "\" (known: " + list + ")");
    }
  }
}

}  // namespace clipshard
