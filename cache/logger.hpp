// The "kiln" spdlog logger (stderr, level from KILN_LOG_LEVEL, default warn), shared by the
// cache and the rest of the library. Created once, whichever module asks first.
#pragma once
#include <spdlog/spdlog.h>

namespace kiln {
spdlog::logger& log();
}
