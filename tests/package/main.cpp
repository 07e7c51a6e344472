// A consumer of quench::quench: header-only, nothing to link.
#include <quench/quench.hpp>

#include <cstdio>

int main() {
  quench::tensor t(quench::dtype::float32, {4});
  t.view<float>()[0] = 1.5f;
  const quench::float16 h(t.view<float>()[0]);
  std::printf("quench %d.%d.%d: 1.5 as float16 = 0x%04x\n", QUENCH_VERSION_MAJOR, QUENCH_VERSION_MINOR,
              QUENCH_VERSION_PATCH, static_cast<unsigned>(h.bits()));
  return h.bits() == 0x3e00 ? 0 : 1;
}
