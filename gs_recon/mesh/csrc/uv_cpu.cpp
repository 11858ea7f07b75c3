// UV rasterisation on the CPU: the texel centres inside each triangle of a UV layout, with barycentrics.
// Same definition and output order as the numpy reference gs_recon/mesh/uv.py:_texel_hits_numpy (parity:
// tests/test_charts.py): per face, the texel centres of its bounding box row by row, kept where all three
// barycentrics are >= -tol; degenerate faces (|det| <= 1e-12) cover nothing. No fast-math here: the inside
// test must round as the reference does.
#pragma GCC optimize("no-fast-math")
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

namespace {
struct Face {
  int64_t x0, y0, w, h;
  double ax, ay, c2, c3, c4, c5;
};

Face face_setup(const double* t, int64_t size) {
  Face f{};
  const double mnx = std::min(t[0], std::min(t[2], t[4])), mxx = std::max(t[0], std::max(t[2], t[4]));
  const double mny = std::min(t[1], std::min(t[3], t[5])), mxy = std::max(t[1], std::max(t[3], t[5]));
  const auto clampi = [](double v, double lo, double hi) { return (int64_t)std::min(std::max(v, lo), hi); };
  const int64_t x0 = clampi(std::ceil(mnx - 1e-3), 0, (double)size), y0 = clampi(std::ceil(mny - 1e-3), 0, (double)size);
  const int64_t x1 = clampi(std::floor(mxx + 1e-3), -1, (double)size - 1);
  const int64_t y1 = clampi(std::floor(mxy + 1e-3), -1, (double)size - 1);
  f.x0 = x0;
  f.y0 = y0;
  const double v0x = t[2] - t[0], v0y = t[3] - t[1], v1x = t[4] - t[0], v1y = t[5] - t[1];
  const double den = v0x * v1y - v1x * v0y;
  if (!(std::abs(den) > 1e-12)) return f;  // w = h = 0: covers nothing
  f.w = std::max<int64_t>(x1 - x0 + 1, 0);
  f.h = std::max<int64_t>(y1 - y0 + 1, 0);
  const double inv = 1.0 / den;
  f.ax = t[0];
  f.ay = t[1];
  f.c2 = v1y * inv;
  f.c3 = -v1x * inv;
  f.c4 = -v0y * inv;
  f.c5 = v0x * inv;
  return f;
}

// visits the texels of face f inside it: fn(x, y, l0, l1, l2)
template <typename Fn>
inline void for_inside(const Face& f, double tol, Fn fn) {
  for (int64_t dy = 0; dy < f.h; ++dy) {
    const int64_t y = f.y0 + dy;
    const double py = (double)y - f.ay;
    for (int64_t dx = 0; dx < f.w; ++dx) {
      const int64_t x = f.x0 + dx;
      const double px = (double)x - f.ax;
      const double l1 = px * f.c2 + py * f.c3;
      const double l2 = px * f.c4 + py * f.c5;
      const double l0 = 1 - l1 - l2;
      if (l0 >= -tol && l1 >= -tol && l2 >= -tol) fn(x, y, l0, l1, l2);
    }
  }
}
}  // namespace

// tri [F, 3, 2] float64 texel-centre coordinates -> (face [K] int64, flat texel y * size + x [K] int64,
// barycentrics [K, 3] float64), faces in order.
std::vector<at::Tensor> texel_hits(at::Tensor tri, int64_t size, double tol) {
  tri = tri.to(at::kDouble).contiguous();
  const int64_t F = tri.size(0);
  const double* tp = tri.data_ptr<double>();
  std::vector<Face> faces(F);
  std::vector<int64_t> count(F + 1, 0);
  at::parallel_for(0, F, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      faces[i] = face_setup(tp + i * 6, size);
      int64_t n = 0;
      for_inside(faces[i], tol, [&](int64_t, int64_t, double, double, double) { ++n; });
      count[i + 1] = n;
    }
  });
  for (int64_t i = 0; i < F; ++i) count[i + 1] += count[i];
  const int64_t K = count[F];
  auto opt = at::TensorOptions().dtype(at::kLong);
  at::Tensor face = at::empty({K}, opt), pix = at::empty({K}, opt);
  at::Tensor bary = at::empty({K, 3}, at::TensorOptions().dtype(at::kDouble));
  int64_t* fp = face.data_ptr<int64_t>();
  int64_t* pp = pix.data_ptr<int64_t>();
  double* bp = bary.data_ptr<double>();
  at::parallel_for(0, F, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t k = count[i];
      for_inside(faces[i], tol, [&](int64_t x, int64_t y, double l0, double l1, double l2) {
        fp[k] = i;
        pp[k] = y * size + x;
        bp[3 * k] = l0;
        bp[3 * k + 1] = l1;
        bp[3 * k + 2] = l2;
        ++k;
      });
    }
  });
  return {face, pix, bary};
}
