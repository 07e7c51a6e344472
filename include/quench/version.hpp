#pragma once
// The single source of quench's version; CMakeLists.txt parses these three lines.
#define QUENCH_VERSION_MAJOR 0
#define QUENCH_VERSION_MINOR 1
#define QUENCH_VERSION_PATCH 0

#define QUENCH_VERSION (QUENCH_VERSION_MAJOR * 10000 + QUENCH_VERSION_MINOR * 100 + QUENCH_VERSION_PATCH)
