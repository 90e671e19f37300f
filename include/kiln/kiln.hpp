// kiln: run-time compiled FP8 GEMMs for NVIDIA Hopper.
#pragma once
#include "kiln/error.hpp"
#include "kiln/gemm.hpp"
#include "kiln/runtime.hpp"
#include "kiln/types.hpp"
#include "kiln/version.hpp"
