// kiln's logger lives with the lowest layer (cache/logger.hpp); never on the hot path.
#pragma once
#include "cache/logger.hpp"
