#include <cstdio>
#include "quench/quench.hpp"
int main() { std::printf("quench %d\n", QUENCH_VERSION); }
