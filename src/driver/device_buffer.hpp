// Owning device allocation (cuMemAlloc) for tests, benchmarks and tools. Move-only; the
// destructor never throws.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "driver/cuda_driver.hpp"

namespace kiln::driver {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) KILN_CU(get().cuMemAlloc(&ptr_, bytes));
  }
  ~DeviceBuffer() {
    if (ptr_) get().cuMemFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
    other.ptr_ = 0, other.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <typename T = void>
  T* get_as() const {
    return reinterpret_cast<T*>(ptr_);
  }
  CUdeviceptr ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }

  void upload(const void* host, size_t bytes) { KILN_CU(get().cuMemcpyHtoD(ptr_, host, bytes)); }
  template <typename T>
  void upload(const std::vector<T>& host) {
    upload(host.data(), host.size() * sizeof(T));
  }
  template <typename T>
  std::vector<T> download(size_t count) const {
    std::vector<T> host(count);
    KILN_CU(get().cuMemcpyDtoH(host.data(), ptr_, count * sizeof(T)));
    return host;
  }

 private:
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

// Retains device 0's primary context and makes it current (what the CUDA runtime does).
class PrimaryContext {
 public:
  explicit PrimaryContext(int ordinal = 0) {
    KILN_CU(get().cuDeviceGet(&device_, ordinal));
    KILN_CU(get().cuDevicePrimaryCtxRetain(&context_, device_));
    KILN_CU(get().cuCtxSetCurrent(context_));
  }
  ~PrimaryContext() { get().cuDevicePrimaryCtxRelease(device_); }
  PrimaryContext(const PrimaryContext&) = delete;
  PrimaryContext& operator=(const PrimaryContext&) = delete;
  CUdevice device() const { return device_; }
  CUcontext context() const { return context_; }

 private:
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
};

}  // namespace kiln::driver
