// kiln info: versions, the GPU if any, the cache directory and the kernel digest.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "driver/cuda_driver.hpp"
#include "jit/kernel_headers.hpp"
#include "jit/nvrtc_compiler.hpp"
#include "kiln/runtime.hpp"
#include "kiln/version.hpp"

namespace kiln::cli {

void add_info(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("info", "Show versions, GPUs, cache directory, kernel digest");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([run, json] {
    *run = [json] {
      nlohmann::json info;
      info["kiln_version"] = KILN_VERSION_STRING;
      info["nvrtc_version"] = jit::nvrtc_version();
      info["cache_dir"] = Runtime::instance().cache_dir();
      info["kernel_digest"] = jit::kernel_headers().digest;
      info["kernel_source"] = jit::kernel_headers().origin;
      nlohmann::json gpus = nlohmann::json::array();
      if (driver::available()) {
        const auto& cu = driver::get();
        int version = 0;
        cu.cuDriverGetVersion(&version);
        info["driver_cuda_version"] = fmt::format("{}.{}", version / 1000, version % 1000 / 10);
        for (int i = 0; i < driver::device_count(); ++i) {
          CUdevice dev = 0;
          char name[256] = {};
          int major = 0, minor = 0, sms = 0;
          cu.cuDeviceGet(&dev, i);
          cu.cuDeviceGetName(name, sizeof(name), dev);
          cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
          cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
          cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
          gpus.push_back({{"index", i}, {"name", name},
                          {"compute_capability", fmt::format("{}.{}", major, minor)},
                          {"sms", sms}});
        }
      } else {
        info["driver_cuda_version"] = nullptr;
      }
      info["gpus"] = gpus;
      if (*json) {
        fmt::print("{}\n", info.dump(2));
        return kExitOk;
      }
      fmt::print("kiln            {}\n", KILN_VERSION_STRING);
      fmt::print("NVRTC           {}\n", info["nvrtc_version"].get<std::string>());
      fmt::print("driver          {}\n", info["driver_cuda_version"].is_null()
                                             ? std::string("none (no libcuda)")
                                             : info["driver_cuda_version"].get<std::string>());
      if (gpus.empty()) fmt::print("GPU             none\n");
      for (const auto& gpu : gpus)
        fmt::print("GPU {}           {} (sm_{}, {} SMs)\n", gpu["index"].get<int>(),
                   gpu["name"].get<std::string>(), gpu["compute_capability"].get<std::string>(),
                   gpu["sms"].get<int>());
      fmt::print("cache           {}\n", info["cache_dir"].get<std::string>());
      fmt::print("kernels         {} ({})\n", info["kernel_digest"].get<std::string>(),
                 info["kernel_source"].get<std::string>());
      return kExitOk;
    };
  });
}

}  // namespace kiln::cli
