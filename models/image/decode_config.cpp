// decode_config_fields (image_decoder.h): DecodeOptions' config keys.
#include "models/image/image_decoder.h"

namespace clipshard {

const ConfigFields<DecodeOptions>& decode_config_fields() {
  static const ConfigFields<DecodeOptions> fields = {
      config_field("max_image_pixels", &DecodeOptions::max_pixels, config_int(1, int64_t{1} << 40))
          .in_fingerprint(),
      config_field("reduced_decode", &DecodeOptions::reduced_decode, config_bool())
          .in_fingerprint(),
  };
  return fields;
}

void from_json(const nlohmann::json& object, DecodeOptions& options) {
  read_config_object(decode_config_fields(), object, "", &options);
}

}  // namespace clipshard
