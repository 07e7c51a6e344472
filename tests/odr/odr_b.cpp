#include "quench/quench.hpp"

int odr_b() { return static_cast<int>(quench::dtype_from_name("float")); }
