// kiln's logger: spdlog logger "kiln", level from KILN_LOG_LEVEL (trace, debug, info, warn,
// error, off; default warn). Never used on the launch hot path.
#pragma once
#include <spdlog/spdlog.h>

namespace kiln {
spdlog::logger& log();
}
