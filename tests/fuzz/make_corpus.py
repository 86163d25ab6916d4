#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/*); standard library only.

Seeds: tiny valid files of every accepted format, the hostile files of issue 8 (each a unit
test in tests/image_test.cpp), and valid and invalid v2 requests. Run from anywhere; files
found by fuzzing are added beside these by hand (see README.md) and are not rewritten here.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(folder, name, data):
    path = os.path.join(HERE, "corpus", folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


SIG = b"\x89PNG\r\n\x1a\n"


def png(w, h, depth, color, raw, interlace=0, extra=b""):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    return SIG + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def gif(w, h, frames=(0,)):
    g = b"GIF89a" + struct.pack("<HH", w, h) + bytes([0x80, 0, 0, 255, 0, 0, 0, 0, 255])
    for index in frames:
        codes = 4 | (index << 3) | (5 << 6)
        g += bytes([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, codes & 255, codes >> 8, 0])
    return g + b";"


def bmp_2x2():
    return (b"BM" + struct.pack("<IIIIiiHHIIiiII", 70, 0, 54, 40, 2, 2, 1, 24, 0, 16, 0, 0, 0, 0)
            + bytes([255, 0, 0, 255, 255, 255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 0]))


def jpeg_flat_8x8(scans):
    one_code = bytes([1]) + bytes(15) + bytes([0])
    j = (bytes([0xFF, 0xD8, 0xFF, 0xDB, 0, 0x43, 0]) + bytes([1]) * 64
         + bytes([0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0])
         + bytes([0xFF, 0xC4, 0, 20, 0x00]) + one_code + bytes([0xFF, 0xC4, 0, 20, 0x10]) + one_code)
    j += bytes([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x3F]) * scans
    return j + bytes([0xFF, 0xD9])


def images():
    rgb = b"".join(b"\0" + bytes((x * 60 + y * 20 + c * 80) % 256 for x in range(4) for c in range(3)) for y in range(4))
    write("image", "rgb_4x4.png", png(4, 4, 8, 2, rgb))
    write("image", "grey16_interlaced_3x3.png", png(3, 3, 16, 0, bytes(7 * 3 * 2 + 15), interlace=1))
    palette = chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255])) + chunk(b"tRNS", bytes([128]))
    write("image", "palette_trns_2x2.png", png(2, 2, 1, 3, bytes([0, 0x40, 0, 0x80]), extra=palette))
    write("image", "rgba_2x1.png", png(2, 1, 8, 6, bytes([0, 1, 2, 3, 4, 5, 6, 7, 8])))
    write("image", "animated_1x1.gif", gif(1, 1, (0, 1)))
    write("image", "rgb_2x2.bmp", bmp_2x2())
    write("image", "flat_8x8.jpg", jpeg_flat_8x8(1))
    sample = os.path.join(HERE, "..", "..", "..", "shared", "datasets", "cifar10-samples", "airplane_0001.jpg")
    if os.path.exists(sample):  # a real camera-style JPEG (Huffman tables, 4:2:0), under 1 KB
        with open(sample, "rb") as f:
            write("image", "cifar_airplane.jpg", f.read())
    # The hostile files of issue 8.
    ihdr_1x1 = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    write("image", "idat_length_2gib.png", SIG + ihdr_1x1 + struct.pack(">I", 0x80000000) + b"IDAT" + b"x" * 35)
    write("image", "bomb_16384x16384.gif", gif(16384, 16384))
    write("image", "zlib_bomb_1x1.png", SIG + ihdr_1x1 + chunk(b"IDAT", zlib.compress(bytes(2 << 20), 9))
          + chunk(b"IEND", b""))
    write("image", "jpeg_101_scans.jpg", jpeg_flat_8x8(101))
    write("image", "hdr_rle_loop.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 8\n" + bytes([2, 2, 0, 8]))


def request(body, json_length=None):
    """The fuzz_v2_request input: flag byte, 2-byte little-endian length, body."""
    if json_length is None:
        return b"\0\0\0" + body
    assert json_length < 65536 and json_length <= len(body)
    return b"\1" + struct.pack("<H", json_length) + body


def v2_requests():
    j = b'{"id":"a","inputs":[{"name":"image","shape":[1,1,2,2],"datatype":"UINT8","data":[0,1,2,255]}]}'
    write("v2_request", "json_uint8.bin", request(j))
    j = (b'{"inputs":[{"name":"images","shape":[1,1,2,2],"datatype":"FP32","data":[[[[0.5,1],[2,255]]]]}],'
         b'"outputs":[{"name":"probabilities","parameters":{"classification":3}},{"name":"logits"}]}')
    write("v2_request", "json_fp32_nested_outputs.bin", request(j))
    j = (b'{"inputs":[{"name":"image","shape":[1,1,2,2],"datatype":"UINT8","parameters":{"binary_data_size":4}}],'
         b'"parameters":{"binary_data_output":true},"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}')
    write("v2_request", "binary_uint8.bin", request(j + bytes([0, 1, 2, 255]), len(j)))
    j = b'{"inputs":[{"name":"image","shape":[1,1,1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}'
    write("v2_request", "binary_fp32.bin", request(j + struct.pack("<ff", 0.0, 255.0), len(j)))
    write("v2_request", "binary_fp32_nan.bin", request(j + struct.pack("<ff", float("nan"), 1.0), len(j)))
    write("v2_request", "bad_shape.bin", request(b'{"inputs":[{"name":"image","shape":[1,2],"datatype":"UINT8","data":[1,2]}]}'))
    write("v2_request", "repeated_keys.bin",
          request(b'{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"UINT8","data":[1],"data":[2]}],"inputs":[]}'))
    write("v2_request", "deep.bin", request(b'{"x":' + b"[" * 40 + b"]" * 40 + b"}"))
    write("v2_request", "not_json.bin", request(b"\xff\xfe{"))


if __name__ == "__main__":
    images()
    v2_requests()
