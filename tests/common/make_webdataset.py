#!/usr/bin/python3
"""Writes WebDataset tar shards for clipshard's tests (standard library only).

  make_webdataset.py corpus OUT_DIR IMAGES_DIR SAMPLES PER_SHARD [ONLY_IMAGE]
      img2dataset's layout: OUT_DIR/shards/{00000..}.tar with KEY.jpg, KEY.txt, KEY.json
      (caption, url, key, status, width, height), and the same corpus as loose files
      OUT_DIR/loose/KEY.jpg plus one manifest per tar, OUT_DIR/manifests/{00000..}.jsonl
      ({"__key__", "jpg": path, "txt": caption}), rows in the tars' order, so that a tar run and
      a loose run score the same images and captions in the same batches. ONLY_IMAGE: use that
      file of IMAGES_DIR for every sample instead of cycling through its JPEGs.
  make_webdataset.py hostile OUT_DIR IMAGE
      One tar per hostile case (OUT_DIR/<case>.tar) and OUT_DIR/expected.json:
      {case: [[sample_key, reason_or_"ok"], ...]} in sample order.
"""
import io
import json
import os
import sys
import tarfile


def add(tar, name, data, mtime=1700000000):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def add_special(tar, name, kind, target=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    info.mtime = 1700000000
    tar.addfile(info)


def captions(i):
    return "a photo number %d of a small scene" % i


def corpus(out, images_dir, samples, per_shard, only=None):
    images = [only] if only else sorted(f for f in os.listdir(images_dir)
                    if f.endswith(".jpg") and f not in ("empty.jpg", "truncated.jpg",
                                                        "not_an_image.jpg", "directory.jpg",
                                                        "large_3000x2000.jpg", "cmyk_300x400.jpg"))
    os.makedirs(os.path.join(out, "shards"), exist_ok=True)
    os.makedirs(os.path.join(out, "loose"), exist_ok=True)
    os.makedirs(os.path.join(out, "manifests"), exist_ok=True)
    tar = manifest = None
    for i in range(samples):
        if i % per_shard == 0:
            if tar:
                tar.close()
                manifest.close()
            manifest = open(os.path.join(out, "manifests", "%05d.jsonl" % (i // per_shard)), "w")
            tar = tarfile.open(os.path.join(out, "shards", "%05d.tar" % (i // per_shard)), "w",
                               format=tarfile.GNU_FORMAT)
        key = "%09d" % i
        with open(os.path.join(images_dir, images[i % len(images)]), "rb") as f:
            jpg = f.read()
        if i >= len(images):  # distinct bytes per sample, still a valid JPEG (after EOI)
            jpg += b"\0" * (i // len(images))
        caption = captions(i)
        meta = {"caption": caption, "url": "http://example.com/%d.jpg" % i, "key": key,
                "status": "success", "width": 0, "height": 0}
        add(tar, key + ".jpg", jpg)
        add(tar, key + ".txt", caption.encode())
        add(tar, key + ".json", json.dumps(meta).encode())
        with open(os.path.join(out, "loose", key + ".jpg"), "wb") as f:
            f.write(jpg)
        manifest.write(json.dumps({"__key__": key, "jpg": "../loose/%s.jpg" % key, "txt": caption})
                       + "\n")
    tar.close()
    manifest.close()


def hostile(out, image_path):
    with open(image_path, "rb") as f:
        jpg = f.read()
    os.makedirs(out, exist_ok=True)
    expected = {}

    def sample(tar, key, image=True, text=b"a caption", meta=None, ext="jpg"):
        if image:
            add(tar, key + "." + ext, jpg)
        if text is not None:
            add(tar, key + ".txt", text)
        if meta is not None:
            add(tar, key + ".json", meta)

    def write(case, build, fmt=tarfile.GNU_FORMAT):
        path = os.path.join(out, case + ".tar")
        with tarfile.open(path, "w", format=fmt) as tar:
            build(tar)
        return path

    # One tar holding every per-member problem, between good samples.
    def members(tar):
        sample(tar, "good1")
        add(tar, "zero.jpg", b"")
        add(tar, "zero.txt", b"an empty image member")
        sample(tar, "noimage", image=False)
        sample(tar, "nocaption", text=None)
        sample(tar, "badutf8", text=b"caf\xe9 \xff")
        sample(tar, "badjson", meta=b"{\"caption\": ")
        sample(tar, "arrayjson", meta=b"[1, 2]")  # valid, not an object: not merged, still a row
        add_special(tar, "adir", tarfile.DIRTYPE)
        add_special(tar, "symlinked.jpg", tarfile.SYMTYPE, "good1.jpg")
        add(tar, "symlinked.txt", b"its image is a symlink")
        add_special(tar, "hardlinked.jpg", tarfile.LNKTYPE, "good1.jpg")
        add(tar, "hardlinked.txt", b"its image is a hard link")
        sample(tar, "dup")
        sample(tar, "between")
        sample(tar, "dup")  # a non-consecutive repeat: a second sample with the same key
        sample(tar, "pngalt", ext="png")
        sample(tar, "good2")
    write("members", members)
    expected["members"] = [
        ["good1", "ok"], ["zero", "empty_file"], ["noimage", "missing_key"],
        ["nocaption", "missing_key"], ["badutf8", "invalid_utf8"], ["badjson", "malformed_json"],
        ["arrayjson", "ok"], ["symlinked", "missing_key"], ["hardlinked", "missing_key"],
        ["dup", "ok"], ["between", "ok"], ["dup", "ok"], ["pngalt", "ok"], ["good2", "ok"]]

    # Long names: pax (POSIX) and GNU ('L' headers), in directories, with a dotted extension.
    long_dir = "d" * 120 + "/" + "e" * 60
    def pax(tar):
        sample(tar, long_dir + "/paxsample")
        sample(tar, "short")
        add(tar, long_dir + "/seg.seg.png", jpg)  # key .../seg, extension "seg.png": no image
    write("pax_long", pax, fmt=tarfile.PAX_FORMAT)
    expected["pax_long"] = [[long_dir + "/paxsample", "ok"], ["short", "ok"],
                            [long_dir + "/seg", "missing_key"]]
    write("gnu_long", pax, fmt=tarfile.GNU_FORMAT)
    expected["gnu_long"] = expected["pax_long"]

    # Truncation: cut inside the second sample's image data, and inside the third's header.
    def three(tar):
        sample(tar, "first")
        sample(tar, "second")
        sample(tar, "third")
    full = write("full", three)
    data = open(full, "rb").read()
    os.remove(full)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        infos = t.getmembers()
    second_jpg = [m for m in infos if m.name == "second.jpg"][0]
    third_header = [m for m in infos if m.name == "third.jpg"][0].offset
    with open(os.path.join(out, "cut_member.tar"), "wb") as f:
        f.write(data[:second_jpg.offset_data + 100])
    expected["cut_member"] = [["first", "ok"], ["second", "truncated_tar"]]
    with open(os.path.join(out, "cut_header.tar"), "wb") as f:
        f.write(data[:third_header + 200])
    expected["cut_header"] = [["first", "ok"], ["second", "ok"], ["third", "truncated_tar"]]

    # A corrupt checksum in the second sample's caption header: that sample is an error record,
    # the scan resynchronises and the third sample is read.
    second_txt = [m for m in infos if m.name == "second.txt"][0].offset
    bad = bytearray(data)
    bad[second_txt + 148:second_txt + 156] = b"0000000\0"
    with open(os.path.join(out, "bad_checksum.tar"), "wb") as f:
        f.write(bytes(bad))
    expected["bad_checksum"] = [["first", "ok"], ["second", "corrupt_tar"], ["third", "ok"]]

    # A size field in GNU base-256 (how tar writes sizes of 8 GiB and more), here for a small
    # member so that the file stays small; checksum recomputed.
    def one(tar):
        sample(tar, "b256")
        sample(tar, "afterb256")
    path = write("base256", one)
    raw = bytearray(open(path, "rb").read())
    size = len(jpg)
    raw[124:136] = bytes([0x80]) + size.to_bytes(11, "big")
    raw[148:156] = b"        "
    raw[148:156] = b"%06o\0 " % sum(raw[0:512])
    open(path, "wb").write(bytes(raw))
    expected["base256"] = [["b256", "ok"], ["afterb256", "ok"]]

    # Not a tar at all, named .tar.
    with open(os.path.join(out, "not_a_tar.tar"), "wb") as f:
        f.write(b"this is a text file, not a tar archive\n" * 40)
    expected["not_a_tar"] = [["", "corrupt_tar"]]

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "corpus":
        corpus(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
               sys.argv[6] if len(sys.argv) > 6 else None)
    elif sys.argv[1] == "hostile":
        hostile(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: make_webdataset.py corpus|hostile ...")
