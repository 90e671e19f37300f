// The CUDA driver API, opened lazily with dlopen so that kiln loads, compiles and caches on
// machines with no driver. Each function is the exported symbol cuda.h maps its name to.
#pragma once
#include <cuda.h>

#include <string>

namespace kiln::driver {

#define KILN_DRIVER_FUNCTIONS(X)                                                              \
  X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGet)        \
  X(cuDeviceGetCount) X(cuDeviceGetAttribute) X(cuDeviceGetName) X(cuCtxGetCurrent)            \
  X(cuCtxSetCurrent) X(cuCtxGetDevice) X(cuCtxSynchronize) X(cuDevicePrimaryCtxRetain)         \
  X(cuDevicePrimaryCtxRelease) X(cuLibraryLoadData) X(cuLibraryUnload) X(cuLibraryGetKernel)   \
  X(cuKernelSetAttribute) X(cuLaunchKernelEx) X(cuLaunchKernel)        \
  X(cuTensorMapEncodeTiled) X(cuStreamIsCapturing) X(cuPointerGetAttribute) \
  X(cuMemAlloc) X(cuMemFree) X(cuMemcpyHtoD) X(cuMemcpyDtoH) X(cuMemsetD8) X(cuMemsetD8Async) \
  X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)             \
  X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) X(cuEventSynchronize)                    \
  X(cuEventElapsedTime) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiate)   \
  X(cuGraphLaunch) X(cuGraphExecDestroy) X(cuGraphDestroy) \
  X(cuMemcpyDtoDAsync) X(cuOccupancyMaxActiveClusters) X(cuStreamWaitValue32)            \
  X(cuStreamWriteValue32)

struct Driver {
#define KILN_DECLARE(name) decltype(&::name) name = nullptr;
  KILN_DRIVER_FUNCTIONS(KILN_DECLARE)
#undef KILN_DECLARE
};

// True if libcuda could be opened and cuInit succeeded (a GPU may still be absent).
bool available();
// The function table; throws kiln::Error(kNoDevice) if libcuda is missing.
const Driver& get();
// Number of CUDA devices, 0 without driver or GPU. Never throws.
int device_count();
// Throws kiln::Error(kCudaError) naming the call when result != CUDA_SUCCESS.
void check(CUresult result, const char* call);
std::string error_text(CUresult result);

}  // namespace kiln::driver

#define KILN_CU(call) ::kiln::driver::check((call), #call)
