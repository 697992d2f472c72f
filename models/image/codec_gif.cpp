// GIF through giflib: the first frame, composed the way Pillow 9.4's GifImagePlugin loads frame 0
// and convert("RGB") expands it:
//   - the image is the logical screen, grown to hold the frame if the frame sticks out of it;
//   - pixels outside the frame hold the frame's transparent index if its graphic control
//     extension declares one, else index 0;
//   - indices map through the local colour table if the frame has one, else the global one;
//     entries past the table's end, or every entry when there is no table, are Pillow's grey ramp
//     (i, i, i); transparency is ignored (convert("RGB") drops it).
#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "models/image/codecs.h"

namespace clipshard::image_internal {
namespace {

struct GifReader {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  bool truncated = false;
};

int read_bytes(GifFileType* gif, GifByteType* dst, int n) {
  auto* reader = static_cast<GifReader*>(gif->UserData);
  const size_t wanted = n > 0 ? static_cast<size_t>(n) : 0;
  const size_t take = std::min(wanted, reader->size - reader->pos);
  if (take < wanted) reader->truncated = true;
  std::memcpy(dst, reader->data + reader->pos, take);
  reader->pos += take;
  return static_cast<int>(take);
}

// Closes the giflib handle on every path.
class GifHandle {
 public:
  explicit GifHandle(GifFileType* gif) : gif_(gif) {}
  ~GifHandle() {
    if (gif_) {
      int error = 0;
      DGifCloseFile(gif_, &error);
    }
  }
  GifHandle(const GifHandle&) = delete;
  GifHandle& operator=(const GifHandle&) = delete;
  GifFileType* get() const { return gif_; }

 private:
  GifFileType* gif_;
};

RowStatus gif_error(const GifReader& reader, int code) {
  if (reader.truncated || code == D_GIF_ERR_READ_FAILED) {
    return RowStatus::Error(RowError::kTruncatedImage, "giflib: image file is truncated");
  }
  if (code == D_GIF_ERR_NOT_ENOUGH_MEM) {
    return RowStatus::Error(RowError::kInternal, "giflib: out of memory");
  }
  const char* text = GifErrorString(code);
  return RowStatus::Error(RowError::kCorruptImage,
                          std::string("giflib: ") + (text ? text : "decoding error"));
}

}  // namespace

RowStatus decode_gif(const uint8_t* data, size_t size, const DecodeOptions& options,
                     RgbImage* out) {
  GifReader reader;
  reader.data = data;
  reader.size = size;
  int open_error = 0;
  GifHandle handle(DGifOpen(&reader, read_bytes, &open_error));
  GifFileType* gif = handle.get();
  if (!gif) return gif_error(reader, open_error);
  RowStatus status = check_dimensions(gif->SWidth, gif->SHeight, options, "gif");
  if (!status.ok()) return status;

  int transparent_index = -1;  // from the last graphic control extension before the frame
  while (true) {
    GifRecordType record;
    if (DGifGetRecordType(gif, &record) == GIF_ERROR) return gif_error(reader, gif->Error);
    if (record == TERMINATE_RECORD_TYPE) {
      return RowStatus::Error(RowError::kCorruptImage, "gif: no image in file");
    }
    if (record == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;
      if (DGifGetExtension(gif, &code, &block) == GIF_ERROR) return gif_error(reader, gif->Error);
      if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] >= 4) {
        transparent_index = (block[1] & 1) ? block[4] : -1;
      }
      while (block) {
        if (DGifGetExtensionNext(gif, &block) == GIF_ERROR) return gif_error(reader, gif->Error);
      }
      continue;
    }
    if (record != IMAGE_DESC_RECORD_TYPE) continue;  // UNDEFINED: giflib skips it
    if (DGifGetImageDesc(gif) == GIF_ERROR) return gif_error(reader, gif->Error);
    break;
  }

  const GifImageDesc& frame = gif->Image;
  const int64_t frame_right = int64_t{frame.Left} + frame.Width;
  const int64_t frame_bottom = int64_t{frame.Top} + frame.Height;
  const int64_t width = std::max<int64_t>(gif->SWidth, frame_right);
  const int64_t height = std::max<int64_t>(gif->SHeight, frame_bottom);
  status = check_dimensions(width, height, options, "gif");
  if (!status.ok()) return status;

  uint8_t palette[256][3];
  for (int i = 0; i < 256; ++i) palette[i][0] = palette[i][1] = palette[i][2] = static_cast<uint8_t>(i);
  const ColorMapObject* map = frame.ColorMap ? frame.ColorMap : gif->SColorMap;
  if (map && map->Colors) {
    for (int i = 0; i < map->ColorCount && i < 256; ++i) {
      palette[i][0] = map->Colors[i].Red;
      palette[i][1] = map->Colors[i].Green;
      palette[i][2] = map->Colors[i].Blue;
    }
  }

  // Indices of the whole canvas, then one palette lookup per pixel.
  const int w = static_cast<int>(width);
  const int h = static_cast<int>(height);
  std::vector<uint8_t> indices(static_cast<size_t>(w) * static_cast<size_t>(h),
                               static_cast<uint8_t>(transparent_index >= 0 ? transparent_index : 0));
  if (frame.Width > 0 && frame.Height > 0) {
    auto decode_row = [&](int row) -> bool {
      uint8_t* dst = indices.data() + (static_cast<size_t>(frame.Top) + row) * w + frame.Left;
      return DGifGetLine(gif, dst, frame.Width) != GIF_ERROR;
    };
    if (frame.Interlace) {
      static constexpr int kStart[4] = {0, 4, 2, 1};
      static constexpr int kStep[4] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4; ++pass) {
        for (int row = kStart[pass]; row < frame.Height; row += kStep[pass]) {
          if (!decode_row(row)) return gif_error(reader, gif->Error);
        }
      }
    } else {
      for (int row = 0; row < frame.Height; ++row) {
        if (!decode_row(row)) return gif_error(reader, gif->Error);
      }
    }
  }

  allocate_rgb(w, h, out);
  uint8_t* dst = out->pixels.data();
  for (uint8_t index : indices) {
    std::memcpy(dst, palette[index], 3);
    dst += 3;
  }
  return RowStatus::Ok();
}

}  // namespace clipshard::image_internal
