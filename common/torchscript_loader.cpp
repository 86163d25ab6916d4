// Vetting and loading TorchScript archives: zip records, then jit::load under a deadline, then graphs.
#include "torchscript_loader.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/function_impl.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>
#include <vector>

#include "cli.h"
#include "files.h"

namespace maas {
namespace {

// Node kinds a maas model may contain. This is the whole allowlist: anything else (file or
// system access such as aten::from_file, printing, prim::Loop, calls to free functions or
// Python, object creation, attribute writes, threads) refuses the archive.
// Sources of the entries:
//   - maas-export's artifacts (export/torchscript_builder.cpp), as loaded and as frozen by
//     --optimize: the scripted forward's assert (prim::If, prim::RaiseException, dim/size/eq),
//     addcmul, to; the traced C++ modules of every registered architecture (tests/model_test.cpp
//     loads each through this check): _convolution, batch_norm, add, relu, gelu, pooling, amax,
//     linear, mul/div, flatten, attribute reads and the scalar plumbing tracing emits; with
//     --tta, the views of common/tta.h: flip, reflection_pad2d, narrow;
//   - format-1 artifacts (scripted per layer: conv2d, view, method calls on submodules);
//   - a few obvious pure tensor operators a classifier head uses (softmax, cat, mean, ...).
// The check runs on the loaded file, before freeze()/optimize_for_inference() in the server,
// so the ops those passes introduce (prim::mkldnn_convolution, aten::to_mkldnn, ...) need not
// be listed. prim::Loop is deliberately absent: maas never writes one, and without loops a
// forward always ends.
const std::unordered_set<std::string>& allowed_node_kinds() {
  static const std::unordered_set<std::string> kinds = {
      // structure: constants, attributes of the module tree, lists/tuples, branches, asserts
      "prim::Constant", "prim::GetAttr", "prim::CallMethod", "prim::ListConstruct", "prim::ListUnpack",
      "prim::TupleConstruct", "prim::TupleUnpack", "prim::TupleIndex", "prim::If", "prim::RaiseException",
      "prim::Uninitialized", "prim::unchecked_cast", "prim::NumToTensor", "prim::dtype", "prim::device",
      "aten::Int", "aten::Float", "aten::Bool", "aten::ScalarImplicit", "aten::format", "aten::__getitem__",
      "aten::__is__", "aten::__isnot__", "aten::__not__", "aten::len",
      // comparisons and shape queries
      "aten::eq", "aten::ne", "aten::lt", "aten::le", "aten::gt", "aten::ge", "aten::dim", "aten::size",
      "aten::numel",
      // elementwise arithmetic and activations
      "aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul", "aten::mul_", "aten::div",
      "aten::div_", "aten::neg", "aten::addcmul", "aten::relu", "aten::relu_", "aten::leaky_relu",
      "aten::leaky_relu_", "aten::hardtanh", "aten::hardtanh_", "aten::sigmoid", "aten::tanh", "aten::gelu",
      "aten::silu", "aten::clamp", "aten::clamp_min", "aten::round", "aten::abs", "aten::sqrt", "aten::rsqrt",
      "aten::exp", "aten::softmax", "aten::log_softmax",
      // layers
      "aten::conv2d", "aten::_convolution", "aten::batch_norm", "aten::max_pool2d", "aten::avg_pool2d",
      "aten::adaptive_avg_pool2d", "aten::linear", "aten::addmm", "aten::matmul", "aten::mm", "aten::t",
      "aten::dropout", "aten::feature_dropout",
      // dtype and layout
      "aten::to", "aten::type_as", "aten::contiguous", "aten::detach", "aten::view", "aten::reshape",
      "aten::flatten", "aten::permute", "aten::transpose", "aten::unsqueeze", "aten::squeeze",
      "aten::select", "aten::slice", "aten::cat", "aten::mean", "aten::sum", "aten::amax",
      // test-time augmentation views
      "aten::flip", "aten::reflection_pad2d", "aten::narrow",
      // int8 artifacts (export/quantize.h): quantize the normalized input, int8 kernels whose
      // weights are the packed-params objects allowed below, dequantize where float ops follow
      "aten::quantize_per_tensor", "aten::_make_per_tensor_quantized_tensor", "aten::dequantize", "quantized::conv2d", "quantized::conv2d_relu",
      "quantized::linear", "quantized::linear_relu", "quantized::add", "quantized::add_relu",
      "quantized::mul_scalar", "quantized::batch_norm", "quantized::batch_norm_relu",
  };
  return kinds;
}

// The custom C++ classes (torch.classes.*) an archive may hold: PyTorch's own packed int8 weights
// of quantized::conv2d and quantized::linear, which int8 artifacts need. Their __setstate__ is
// LibTorch's C++ code that only rebuilds the packed weights from the pickled tensors (for the
// current quantized engine); no other custom class is allowed, since a class's native state
// restoring could do anything. Names as code/ spells them ("." between namespace and class) and
// as data.pkl's GLOBAL opcode does (a newline). `after_prefix`: the index after "torch.classes".
bool allowed_custom_class_at(const std::string& text, size_t after_prefix) {
  for (const char* name : {"Conv2dPackedParamsBase", "LinearPackedParamsBase"}) {
    for (const char separator : {'.', '\n'}) {
      const std::string qualified = std::string(".quantized") + separator + name;
      if (text.compare(after_prefix, qualified.size(), qualified) != 0) continue;
      const size_t end = after_prefix + qualified.size();
      // The whole name, not a prefix of a longer one ("...ParamsBaseX")
      if (end == text.size() || !(std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_'))
        return true;
    }
  }
  return false;
}

// The first custom class named in `text` that is not allowed, or "" when there is none. Files that
// hold only data (checkpoints: !allow_methods) may name none at all.
std::string refused_custom_class(const std::string& text, bool allow_packed_weights) {
  static const std::string prefix = "torch.classes";
  for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1))
    if (!allow_packed_weights || !allowed_custom_class_at(text, at + prefix.size())) return text.substr(at, 80);
  return "";
}

uint32_t read_u16(const std::string& b, uint64_t at) {
  return static_cast<uint8_t>(b[at]) | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8;
}
uint32_t read_u32(const std::string& b, uint64_t at) { return read_u16(b, at) | read_u16(b, at + 2) << 16; }
uint64_t read_u64(const std::string& b, uint64_t at) { return read_u32(b, at) | uint64_t{read_u32(b, at + 4)} << 32; }

struct ZipEntry {
  std::string name;  // as stored, with the archive's top-level folder
  uint64_t uncompressed_size = 0;
};

// The central directory of a zip (zip64 aware), bounds-checked; only what the policy needs.
// PyTorchStreamReader reads the same directory, so the sizes here are the ones it would allocate.
std::vector<ZipEntry> zip_entries(const std::string& b, const std::string& origin, uint64_t max_records) {
  auto bad = [&](const std::string& what) {
    return NotTorchScript(origin + ": not a readable TorchScript file (corrupt, truncated or another format: " +
                                what + ")");
  };
  const uint64_t n = b.size();
  if (n < 22) throw bad("too short for a zip");
  // End of central directory: the last signature within the final 22 + 65535 (comment) bytes.
  uint64_t eocd = n;
  for (uint64_t at = n - 22 + 1; at-- > 0 && n - at <= 22 + 65535;)
    if (read_u32(b, at) == 0x06054b50) {
      eocd = at;
      break;
    }
  if (eocd == n) throw bad("no zip end record");
  uint64_t count = read_u16(b, eocd + 10), dir_size = read_u32(b, eocd + 12), dir_offset = read_u32(b, eocd + 16);
  if (count == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF) {
    if (eocd < 20 || read_u32(b, eocd - 20) != 0x07064b50) throw bad("no zip64 locator");
    const uint64_t z = read_u64(b, eocd - 20 + 8);
    if (z > n || n - z < 56 || read_u32(b, z) != 0x06064b50) throw bad("bad zip64 end record");
    count = read_u64(b, z + 32);
    dir_size = read_u64(b, z + 40);
    dir_offset = read_u64(b, z + 48);
  }
  if (count > max_records)
    throw TorchScriptLoadError(origin + ": refused: " + std::to_string(count) + " records, more than the limit of " +
                               std::to_string(max_records));
  if (dir_offset > n || dir_size > n - dir_offset) throw bad("central directory outside the file");
  std::vector<ZipEntry> entries;
  uint64_t at = dir_offset;
  const uint64_t end = dir_offset + dir_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (end - at < 46 || read_u32(b, at) != 0x02014b50) throw bad("bad central directory entry");
    const uint64_t name_len = read_u16(b, at + 28), extra_len = read_u16(b, at + 30), comment_len = read_u16(b, at + 32);
    if (end - at - 46 < name_len + extra_len + comment_len) throw bad("central directory entry overruns");
    ZipEntry e;
    e.name = b.substr(at + 46, name_len);
    e.uncompressed_size = read_u32(b, at + 24);
    if (e.uncompressed_size == 0xFFFFFFFF) {  // the real size is the first field of the zip64 extra
      bool found = false;
      for (uint64_t x = at + 46 + name_len, xend = x + extra_len; xend - x >= 4;) {
        const uint64_t id = read_u16(b, x), len = read_u16(b, x + 2);
        if (xend - x - 4 < len) break;
        if (id == 0x0001 && len >= 8) {
          e.uncompressed_size = read_u64(b, x + 4);
          found = true;
          break;
        }
        x += 4 + len;
      }
      if (!found) throw bad("zip64 size missing");
    }
    entries.push_back(std::move(e));
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A code/ path: "code/" then identifier-ish folders and a .py (or .py.debug_pkl) file, no "..".
bool code_path(const std::string& r) {
  if (r.rfind("code/", 0) != 0 || r.find("..") != std::string::npos) return false;
  if (!ends_with(r, ".py") && !ends_with(r, ".py.debug_pkl")) return false;
  return std::all_of(r.begin(), r.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '/' || c == '.'; });
}

// The kinds of record torch.jit.save / torch::serialize::OutputArchive write (names without the
// archive's top-level folder). Mobile bytecode and anything else maas never writes is refused.
bool expected_record(const std::string& r) {
  static const std::set<std::string> fixed = {"version", ".data/version", ".data/serialization_id", "byteorder",
                                              "data.pkl", "constants.pkl"};
  if (fixed.count(r)) return true;
  if (r.rfind("data/", 0) == 0) return all_digits(r.substr(5));
  if (r.rfind("constants/", 0) == 0) return all_digits(r.substr(10));
  if (r.rfind("extra/", 0) == 0) return r.size() > 6 && r.find("..") == std::string::npos;
  return code_path(r);
}

std::string record_text(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  auto [data, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

void add_kinds(const torch::jit::Block* block, std::set<std::string>& bad) {
  for (const torch::jit::Node* node : block->nodes()) {
    const std::string kind = node->kind().toQualString();
    if (!allowed_node_kinds().count(kind)) bad.insert(kind);
    for (const torch::jit::Block* inner : node->blocks()) add_kinds(inner, bad);
  }
}

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

bool is_allowed_node_kind(const std::string& kind) { return allowed_node_kinds().count(kind) > 0; }

void check_torchscript_archive(const std::string& bytes, const std::string& origin, const TorchScriptLoadOptions& options) {
  if (bytes.size() > options.max_file_bytes)
    throw TorchScriptLoadError(origin + ": refused: " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                               std::to_string(options.max_file_bytes));
  const std::vector<ZipEntry> entries = zip_entries(bytes, origin, options.max_records);
  std::istringstream in(bytes);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::vector<std::string> records;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&in);
    records = reader->getAllRecords();
  } catch (const std::exception&) {
    throw NotTorchScript(origin + ": not a readable TorchScript file (corrupt, truncated or another format)");
  }
  if (records.size() != entries.size())
    throw NotTorchScript(origin + ": not a readable TorchScript file (zip directory is inconsistent)");
  // Sizes by record name (the reader's names lack the top-level folder every entry shares).
  std::map<std::string, uint64_t> sizes;
  uint64_t total = 0, code_total = 0;
  for (const ZipEntry& e : entries) {
    const auto slash = e.name.find('/');
    const std::string r = slash == std::string::npos ? e.name : e.name.substr(slash + 1);
    if (!sizes.emplace(r, e.uncompressed_size).second)
      throw TorchScriptLoadError(origin + ": refused: record '" + r + "' appears twice");
    total += std::min<uint64_t>(e.uncompressed_size, options.max_uncompressed_bytes + 1);
  }
  if (total > options.max_uncompressed_bytes)
    throw TorchScriptLoadError(origin + ": refused: records hold more than " +
                               std::to_string(options.max_uncompressed_bytes) + " bytes uncompressed");
  for (const std::string& r : records) {
    if (!sizes.count(r))
      throw NotTorchScript(origin + ": not a readable TorchScript file (zip directory is inconsistent)");
    if (!expected_record(r))
      throw TorchScriptLoadError(origin + ": refused: unexpected record '" + r +
                                 "' (maas reads only what torch.jit.save writes: code/, data/, constants/, extra/, "
                                 "*.pkl, version)");
    if (ends_with(r, ".pkl") || ends_with(r, ".py")) code_total += sizes[r];
  }
  if (code_total > options.max_code_bytes)
    throw TorchScriptLoadError(origin + ": refused: code and pickles hold more than " +
                               std::to_string(options.max_code_bytes) + " bytes");
  // The sources are compiled and the pickles unpickled by jit::load: what runs there is a class's
  // __setstate__ (or a custom C++ class's), so an archive defining one is refused unread.
  for (const std::string& r : records) {
    const bool source = r.rfind("code/", 0) == 0 && ends_with(r, ".py");
    if (!source && r != "data.pkl" && r != "constants.pkl") continue;
    std::string text;
    try {
      text = record_text(*reader, r);
    } catch (const std::exception&) {
      throw NotTorchScript(origin + ": not a readable TorchScript file (record '" + r + "' is corrupt)");
    }
    for (const char* flag : {"__setstate__", "__getstate__"})
      if (source && text.find(flag) != std::string::npos)
        throw TorchScriptLoadError(origin + ": refused: " + r + " defines " + flag +
                                   " (code that would run while loading; maas never writes it)");
    const std::string custom_class = refused_custom_class(text, options.allow_methods);
    if (!custom_class.empty())
      throw TorchScriptLoadError(origin + ": refused: " + r + " uses a custom C++ class (" +
                                 custom_class.substr(0, custom_class.find_first_of("\n ,()[]'\"")) +
                                 "), whose state is restored by native code; maas allows only int8 packed weights");
  }
}

void check_torchscript_graphs(const torch::jit::Module& module, const std::string& origin,
                              const TorchScriptLoadOptions& options) {
  // Every function the archive defined lives in the module's compilation unit: methods of all
  // modules and script classes, hooks, and free functions.
  std::vector<torch::jit::Function*> functions = module._ivalue()->compilation_unit()->get_functions();
  for (const auto& m : module.modules())
    for (const auto& method : m.get_methods()) functions.push_back(&method.function());
  std::set<torch::jit::Function*> seen;
  for (torch::jit::Function* fn : functions) {
    if (!seen.insert(fn).second) continue;
    const std::string name = fn->qualname().qualifiedName();
    if (!options.allow_methods)
      throw TorchScriptLoadError(origin + ": refused: defines code (" + name + "), but this kind of file holds only data");
    if (!fn->isGraphFunction())
      throw TorchScriptLoadError(origin + ": refused: " + name + " is not a TorchScript graph");
    std::set<std::string> bad;
    add_kinds(torch::jit::toGraphFunction(*fn).graph()->block(), bad);
    if (!bad.empty())
      throw TorchScriptLoadError(origin + ": refused: " + name + " uses " + join(bad) +
                                 " (not among the tensor operators maas models may use)");
  }
}

std::string read_torchscript_file(const std::string& path, const TorchScriptLoadOptions& options) {
  try {
    RegularFile file(path);  // never blocks on a FIFO or device
    if (file.size() > options.max_file_bytes)
      throw TorchScriptLoadError(path + ": refused: " + std::to_string(file.size()) +
                                 " bytes, more than the limit of " + std::to_string(options.max_file_bytes));
    return file.read(file.size());  // at most the size checked above, even if the file grows meanwhile
  } catch (const FileError& e) {
    throw TorchScriptLoadError(e.what());
  }
}

torch::jit::Module load_torchscript(const std::string& bytes, const std::string& origin,
                                    torch::jit::ExtraFilesMap& extra_files, const TorchScriptLoadOptions& options) {
  check_torchscript_archive(bytes, origin, options);
  // The worker owns copies of everything it touches: it may outlive this call (see run_with_deadline).
  auto shared_bytes = std::make_shared<const std::string>(bytes);
  using Loaded = std::pair<torch::jit::Module, torch::jit::ExtraFilesMap>;
  Loaded loaded = run_with_deadline<Loaded>(
      [shared_bytes, origin, options, extra = extra_files]() mutable {
        std::istringstream in(*shared_bytes);
        torch::jit::Module module;
        try {
          module = torch::jit::load(in, torch::kCPU, extra);
        } catch (const std::exception&) {
          throw NotTorchScript(origin + ": not a readable TorchScript file (corrupt, truncated or another format)");
        }
        check_torchscript_graphs(module, origin, options);
        return Loaded{std::move(module), std::move(extra)};
      },
      options.deadline, origin + ": loading");
  extra_files = std::move(loaded.second);
  return std::move(loaded.first);
}

std::string interpreter_error_cause(const std::string& what) { return last_line(what, 300); }

}  // namespace maas
