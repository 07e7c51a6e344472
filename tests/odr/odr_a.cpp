#include "quench/quench.hpp"

int odr_b();

int main() { return odr_b() == static_cast<int>(quench::dtype::float32) ? 0 : 1; }
