// Serving building blocks: image decoding and the dynamic batcher.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "artifact.h"
#include "files.h"
#include "image.h"
#include "model_runner.h"
#include "protocol.h"
#include "serve_options.h"
#include "test_util.h"

namespace maas {
namespace {

std::string samples_dir() { return std::string(MAAS_SOURCE_DIR) + "/../shared/datasets/cifar10-samples"; }

TEST(DecodeImage, DecodesJpegSamplesAndResizes) {
  const std::string path = samples_dir() + "/cat_0004.jpg";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no shared samples at " << samples_dir();
  const std::string bytes = read_text(path);
  const auto rgb = decode_image(bytes, 3, 32, 32);
  EXPECT_EQ(rgb.sizes(), torch::IntArrayRef({1, 3, 32, 32}));
  EXPECT_EQ(rgb.scalar_type(), torch::kUInt8);
  EXPECT_GT(rgb.to(torch::kFloat32).std().item<double>(), 5.0);  // a real picture, not a flat fill
  const auto grey_small = decode_image(bytes, 1, 20, 24);
  EXPECT_EQ(grey_small.sizes(), torch::IntArrayRef({1, 1, 20, 24}));
}

TEST(DecodeImage, RejectsGarbageAndEmptyBodies) {
  EXPECT_THROW(decode_image("", 3, 32, 32), std::invalid_argument);
  try {
    decode_image("definitely not an image", 3, 32, 32);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cannot decode image"), std::string::npos);
  }
}

Artifact random_artifact() {
  return load_artifact_from_bytes(testing::random_cnn_artifact(5, {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}),
                                  "test artifact");
}

// Many clients against `instances` workers: each gets its own rows, and batches hold several requests.
void check_concurrent_clients(int64_t instances) {
  const Artifact artifact = random_artifact();
  torch::jit::Module reference = artifact.module.clone();
  BatchingOptions options;
  options.max_batch_size = 16;
  options.max_queue_delay_us = 200000;
  options.instances = instances;
  ModelRunner runner("cnn", 1, artifact, options);
  ASSERT_EQ(runner.instances(), instances);
  // A held announcement makes batches wait for company (up to 0.2 s), so they form whatever the timing.
  ModelRunner::Arrival held(runner);

  constexpr int kClients = 12, kRequests = 5;
  std::vector<torch::Tensor> inputs, outputs(kClients * kRequests);
  for (int i = 0; i < kClients * kRequests; ++i)
    inputs.push_back(torch::randint(0, 256, {1 + i % 3, 3, 32, 32}, torch::kUInt8));
  std::atomic<int64_t> largest_batch{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int r = 0; r < kRequests; ++r) {
        const int i = c * kRequests + r;
        InferTiming timing;
        outputs[i] = runner.infer(inputs[i], &timing);
        int64_t seen = largest_batch.load();
        while (timing.batch_images > seen && !largest_batch.compare_exchange_weak(seen, timing.batch_images)) {
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GT(largest_batch.load(), 3);  // requests were batched together
  EXPECT_LE(largest_batch.load(), 16);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto expected = reference.forward({inputs[i]}).toTensor();
    ASSERT_EQ(outputs[i].sizes(), expected.sizes()) << i;
    EXPECT_LE((outputs[i] - expected).abs().max().item<double>(), 1e-4) << "request " << i;
  }
}

TEST(ModelRunner, ConcurrentClientsGetTheirOwnAnswersInSharedBatches) { check_concurrent_clients(1); }

// Several workers take turns forming batches from one queue (whatever the machine's core count).
TEST(ModelRunner, SeveralWorkersShareTheQueueAndEveryAnswerIsRight) { check_concurrent_clients(3); }

TEST(ModelRunner, LoneRequestsRunAtOnceAndAnnouncedOnesAreWaitedFor) {
  BatchingOptions options;
  options.max_queue_delay_us = 5'000'000;  // far longer than any test should take
  ModelRunner runner("cnn", 1, random_artifact(), options);
  const auto image = torch::zeros({1, 3, 32, 32}, torch::kUInt8);

  // Nothing announced: the request does not wait for company.
  InferTiming alone;
  runner.infer(image, &alone);
  EXPECT_LT(alone.queue_us, 4'000'000);
  EXPECT_EQ(alone.batch_images, 1);

  // An announced request holds the batch until it arrives; both then run together.
  auto announced = std::make_unique<ModelRunner::Arrival>(runner);
  InferTiming first, second;
  std::thread other([&] { runner.infer(image, &first); });
  while (runner.queued_images() < 1) std::this_thread::yield();  // it waits in the queue
  runner.infer(image, &second, announced.get());
  other.join();
  EXPECT_EQ(first.batch_images, 2);
  EXPECT_EQ(second.batch_images, 2);

  // A withdrawn announcement releases the wait.
  auto withdrawn = std::make_unique<ModelRunner::Arrival>(runner);
  InferTiming third;
  std::thread waiting([&] { runner.infer(image, &third); });
  while (runner.queued_images() < 1) std::this_thread::yield();  // it waits in the queue
  withdrawn.reset();
  waiting.join();
  EXPECT_EQ(third.batch_images, 1);
  EXPECT_LT(third.queue_us, 4'000'000);
}

// A worker polling the queue after its batch (idle_spin_us) is not woken for new work: it must see
// requests itself. With a 2 s poll, a request it missed would wait out the poll; each lone request is
// instead taken at once, concurrent ones are still batched and answered, and the runner stops.
TEST(ModelRunner, APollingWorkerTakesLoneRequestsAtOnce) {
  BatchingOptions options;
  options.idle_spin_us = 2'000'000;
  options.instances = 2;
  const Artifact artifact = random_artifact();
  torch::jit::Module reference = artifact.module.clone();
  auto runner = std::make_unique<ModelRunner>("cnn", 1, artifact, options);
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 20; ++i) {
    const auto image = torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8);
    InferTiming timing;
    const auto logits = runner->infer(image, &timing);
    EXPECT_LT(timing.queue_us, 1'000'000) << "request " << i << " waited for the poll to end";
    EXPECT_LE((logits - reference.forward({image}).toTensor()).abs().max().item<double>(), 1e-4) << i;
  }
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int c = 0; c < 6; ++c)
    clients.emplace_back([&] {
      for (int r = 0; r < 5; ++r) answered += runner->infer(torch::zeros({1, 3, 32, 32}, torch::kUInt8)).size(0);
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered.load(), 30);
  const auto stopping = std::chrono::steady_clock::now();
  runner.reset();  // joins the workers: a polling one ends its poll at once
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(1)) << "shutdown waited out the poll";
}

TEST(ModelRunner, RejectsBadInputAndRefusesWhenFullOrStopping) {
  BatchingOptions options;
  options.max_batch_size = 4;
  options.max_queue_images = 4;
  ModelRunner runner("cnn", 1, random_artifact(), options);
  EXPECT_THROW(runner.infer(torch::zeros({1, 3, 28, 28}, torch::kUInt8)), std::invalid_argument);
  EXPECT_THROW(runner.infer(torch::zeros({1, 3, 32, 32}, torch::kInt32)), std::invalid_argument);
  // More than a batch holds can never run: refused as bad input, not "retry later".
  EXPECT_THROW(runner.infer(torch::zeros({5, 3, 32, 32}, torch::kUInt8)), std::invalid_argument);
  EXPECT_EQ(runner.infer(torch::zeros({4, 3, 32, 32}, torch::kFloat32)).sizes(), torch::IntArrayRef({4, 10}));
  runner.stop_accepting();
  EXPECT_THROW(runner.infer(torch::zeros({1, 3, 32, 32}, torch::kUInt8)), Unavailable);
}

}  // namespace
}  // namespace maas

namespace maas {
namespace {

TEST(ServeOptions, ShippedConfigDocumentsEveryDefault) {
  ServeOptions defaults;
  const std::string path = std::string(MAAS_SOURCE_DIR) + "/configs/serve.yaml";
  ServeOptions loaded = load_serve_options(path, {});
  EXPECT_EQ(fields_to_yaml(fields_of(loaded)), fields_to_yaml(fields_of(defaults)));
  // Every key is written out (a missing one would keep its default and pass the check above).
  const std::string text = read_text(path);
  for (const auto& field : fields_of(defaults)) {
    const std::string name = field.key.substr(field.key.find('.') + 1);
    EXPECT_NE(text.find("\n  " + name + ":"), std::string::npos) << field.key << " is not in " << path;
  }
  EXPECT_EQ(loaded.host, "127.0.0.1");  // loopback by default
  EXPECT_TRUE(loaded.admin_token.empty());  // model control off by default
}

TEST(ServeOptions, BadSettingsNameTheKey) {
  try {
    load_serve_options("", {"batching.max_batch_size=0"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("batching.max_batch_size"), std::string::npos);
  }
  EXPECT_THROW(load_serve_options("", {"server.port=70000"}), ConfigError);
  EXPECT_THROW(load_serve_options("", {"server.prot=80"}), ConfigError);
  EXPECT_THROW(load_serve_options("", {"batching.idle_spin_us=-1"}), ConfigError);
  EXPECT_EQ(load_serve_options("", {"batching.idle_spin_us=0"}).batching.idle_spin_us, 0);
}

}  // namespace
}  // namespace maas

namespace maas {
namespace {

std::string invalid_argument_of(const std::string& body) {
  try {
    parse_infer_request(body, std::nullopt);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(parsed)";
}

// JSON pixel values are taken out of the tree while parsing: order, nesting and checks must be
// exactly those of the data as written, and only an input's "data" is taken.
TEST(Protocol, JsonPixelDataInOrderFlatOrNestedAndOnlyNumbers) {
  const std::string input_head = R"({"inputs":[{"name":"image","shape":[1,1,2,3],"datatype":"FP32",)";
  const auto flat = parse_infer_request(input_head + R"("data":[0,1,2,3,4,5.5]}]})", std::nullopt);
  const auto nested = parse_infer_request(
      R"({"outputs":[{"name":"logits","data":[9,9]}],"inputs":[{"data":[[[0,1,2],[3,4,5.5]]],"parameters":{"data":[7]},)"
      R"("name":"image","shape":[1,1,2,3],"datatype":"FP32"}],"id":"x"})",
      std::nullopt);
  const auto expected = torch::tensor({0.f, 1.f, 2.f, 3.f, 4.f, 5.5f}).view({1, 1, 2, 3});
  EXPECT_TRUE(torch::equal(flat.images, expected)) << flat.images;
  EXPECT_TRUE(torch::equal(nested.images, expected)) << nested.images;
  EXPECT_EQ(nested.id, "x");
  ASSERT_EQ(nested.outputs.size(), 1u);
  EXPECT_NE(invalid_argument_of(input_head + R"("data":[0,1,"2",3,4,5]}]})").find("only numbers, found string"),
            std::string::npos);
  EXPECT_NE(invalid_argument_of(input_head + R"("data":[[0,1,2],[3,4,{}]]}]})").find("only numbers, found object"),
            std::string::npos);
  EXPECT_NE(invalid_argument_of(input_head + R"("data":{"a":1}}]})").find("only numbers, found object"),
            std::string::npos);
  EXPECT_NE(invalid_argument_of(input_head + R"("data":[0,1,2,3,4]}]})").find("5 values but shape needs 6"),
            std::string::npos);
  EXPECT_NE(invalid_argument_of(input_head + R"("data":[0,1,2,3,4,5]])").find("malformed JSON"), std::string::npos);
  EXPECT_NE(invalid_argument_of(input_head + R"("data":[0,1,2,3,4,1e400]}]})").find("malformed JSON"),
            std::string::npos);  // a number beyond double
  // A repeated key: the last one counts, as in the parsed tree.
  const auto repeated = parse_infer_request(input_head + R"("data":[9,9,9],"data":[0,1,2,3,4,5.5]}]})", std::nullopt);
  EXPECT_TRUE(torch::equal(repeated.images, expected)) << repeated.images;
}

}  // namespace
}  // namespace maas
