// A tiny trained run in temp folders: the fixture the export tests (TorchScript and ONNX) start from.
#pragma once

#include <cstdint>
#include <string>

#include "exporter.h"
#include "test_util.h"
#include "trainer.h"

namespace maas::testing {

// A seconds-long trained seed-CNN run (tiny_run_config) on write_tiny_cifar's data with 20 images
// per training file and `test_images` test images, and an empty folder `out` for what is exported.
struct TinyTrainedRun {
  explicit TinyTrainedRun(int64_t test_images) {
    write_tiny_cifar(data.path(), 20, test_images);
    train(tiny_run_config(data.path()), run_dir(), false, {});
  }
  std::string run_dir() const { return run.file("run"); }
  // Export options for this run, written to out/<out_name>; the rest at ExportOptions' defaults.
  ExportOptions export_options(const std::string& out_name) const {
    ExportOptions o;
    o.run_dir = run_dir();
    o.out = out.file(out_name);
    return o;
  }
  TempDir data, run, out;
};

}  // namespace maas::testing
