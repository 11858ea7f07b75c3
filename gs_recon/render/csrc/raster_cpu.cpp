// CPU tile rasterizer for 3D Gaussian splatting: forward and backward.
//
// Same maths as gsplat's CUDA "classic" rasterizer: conics from EWA projection (done in torch),
// per-pixel alpha = min(0.99, opacity * exp(-sigma)), contributions with alpha < 1/255 skipped,
// front-to-back compositing, and early termination once transmittance would fall to <= 1e-4.
// Tiles of `tile` x `tile` pixels; one Gaussian is listed in every tile its 3.33-sigma box touches.
//
// Shapes (C cameras, N Gaussians, D feature channels, M tile/Gaussian intersections):
//   means2d [C, N, 2]  conics [C, N, 3] (a, b, c of the inverse 2D covariance)
//   opacities [C, N]   features [C, N, D]   depths [C, N]   radii [C, N, 2] int32
//   offsets [C, TH*TW + 1] int64   ids [M] int32 (per-camera Gaussian index)
//   render [C, H, W, D]   alpha [C, H, W]   last [C, H, W] int32   median [C, H, W]
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

namespace {
constexpr float kAlphaMax = 0.99f;
constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kTMin = 1e-4f;
}  // namespace

std::vector<torch::Tensor> isect_tiles(torch::Tensor means2d, torch::Tensor radii, torch::Tensor depths,
                                       int64_t tile, int64_t tile_w, int64_t tile_h) {
  TORCH_CHECK(means2d.dtype() == torch::kFloat32 && radii.dtype() == torch::kInt32, "dtype");
  means2d = means2d.contiguous();
  radii = radii.contiguous();
  depths = depths.contiguous();
  const int64_t C = means2d.size(0), N = means2d.size(1), T = tile_w * tile_h;
  const float* m = means2d.data_ptr<float>();
  const int* r = radii.data_ptr<int>();
  const float* d = depths.data_ptr<float>();
  auto offsets = torch::zeros({C, T + 1}, torch::kInt64);
  int64_t* off = offsets.data_ptr<int64_t>();
  // tiles [x0, x1) x [y0, y1) touched by Gaussian cg's box; false when culled (radius 0)
  auto tile_rect = [&](int64_t cg, int64_t& x0, int64_t& x1, int64_t& y0, int64_t& y1) {
    const int rx = r[cg * 2], ry = r[cg * 2 + 1];
    if (rx <= 0 || ry <= 0) return false;
    const float mx = m[cg * 2], my = m[cg * 2 + 1];
    x0 = std::max<int64_t>(0, (int64_t)std::floor((mx - rx) / tile));
    x1 = std::min<int64_t>(tile_w, (int64_t)std::floor((mx + rx) / tile) + 1);
    y0 = std::max<int64_t>(0, (int64_t)std::floor((my - ry) / tile));
    y1 = std::min<int64_t>(tile_h, (int64_t)std::floor((my + ry) / tile) + 1);
    return true;
  };
  // pass 1: counts per tile
  std::vector<int64_t> cam_total(C + 1, 0);
  for (int64_t c = 0; c < C; ++c) {
    int64_t* o = off + c * (T + 1);
    for (int64_t g = 0; g < N; ++g) {
      int64_t x0, x1, y0, y1;
      if (!tile_rect(c * N + g, x0, x1, y0, y1)) continue;
      for (int64_t ty = y0; ty < y1; ++ty)
        for (int64_t tx = x0; tx < x1; ++tx) o[ty * tile_w + tx + 1] += 1;
    }
    for (int64_t t = 0; t < T; ++t) o[t + 1] += o[t];
    cam_total[c + 1] = cam_total[c] + o[T];
  }
  // make offsets global across cameras
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t <= T; ++t) off[c * (T + 1) + t] += cam_total[c];
  auto ids = torch::empty({cam_total[C]}, torch::kInt32);
  int* id = ids.data_ptr<int>();
  std::vector<int64_t> fill(T);
  for (int64_t c = 0; c < C; ++c) {
    const int64_t* o = off + c * (T + 1);
    for (int64_t t = 0; t < T; ++t) fill[t] = o[t];
    for (int64_t g = 0; g < N; ++g) {
      int64_t x0, x1, y0, y1;
      if (!tile_rect(c * N + g, x0, x1, y0, y1)) continue;
      for (int64_t ty = y0; ty < y1; ++ty)
        for (int64_t tx = x0; tx < x1; ++tx) id[fill[ty * tile_w + tx]++] = (int)g;
    }
  }
  // sort each tile by depth (stable: ties keep Gaussian order, as gsplat's radix sort does)
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const int64_t c = k / T, t = k % T;
      const int64_t s = off[c * (T + 1) + t], f = off[c * (T + 1) + t + 1];
      const float* dc = d + c * N;
      std::stable_sort(id + s, id + f, [dc](int a, int bb) { return dc[a] < dc[bb]; });
    }
  });
  return {offsets, ids};
}

// Projected Gaussian cg at pixel (px, py): offsets d = mean - pixel, its conic (a, b, c) and
// sigma = 0.5 d^T [a b; b c] d (the Gaussian's weight is exp(-sigma)).
struct PixelGauss {
  float dx, dy, ca, cb, cc, sigma;
};
inline PixelGauss pixel_gauss(const float* m, const float* cn, int64_t cg, float px, float py) {
  PixelGauss q;
  q.dx = m[cg * 2] - px; q.dy = m[cg * 2 + 1] - py;
  q.ca = cn[cg * 3]; q.cb = cn[cg * 3 + 1]; q.cc = cn[cg * 3 + 2];
  q.sigma = 0.5f * (q.ca * q.dx * q.dx + q.cc * q.dy * q.dy) + q.cb * q.dx * q.dy;
  return q;
}

// Front-to-back compositing over ids[s, f) at one pixel of camera c: fn(j, g, cg, a, Tr, nT) for every
// Gaussian that contributes (alpha a >= kAlphaMin), Tr the transmittance in front of it and nT behind it;
// stops before the transmittance would fall to kTMin. Returns the final transmittance.
template <typename Fn>
inline float composite(const int* id, int64_t s, int64_t f, int64_t c, int64_t N, const float* m, const float* cn,
                       const float* op, float px, float py, Fn&& fn) {
  float Tr = 1.f;
  for (int64_t j = s; j < f; ++j) {
    const int g = id[j];
    const int64_t cg = c * N + g;
    const PixelGauss q = pixel_gauss(m, cn, cg, px, py);
    if (q.sigma < 0.f) continue;
    const float a = std::min(kAlphaMax, op[cg] * std::exp(-q.sigma));
    if (a < kAlphaMin) continue;
    const float nT = Tr * (1.f - a);
    if (nT <= kTMin) break;
    fn(j, g, cg, a, Tr, nT);
    Tr = nT;
  }
  return Tr;
}

// The traversal the three kernels share: for k in [b, e) (k = camera * T + tile), every pixel of that tile,
// fn(c, s, f, x, y, px, py) with [s, f) the tile's depth-sorted range in ids and (px, py) the pixel centre.
template <typename Fn>
inline void for_each_tile_pixel(int64_t b, int64_t e, int64_t T, int64_t tw, int64_t tile, int64_t width,
                                int64_t height, const int64_t* off, Fn&& fn) {
  for (int64_t k = b; k < e; ++k) {
    const int64_t c = k / T, t = k % T, tx = t % tw, ty = t / tw;
    const int64_t s = off[c * (T + 1) + t], f = off[c * (T + 1) + t + 1];
    for (int64_t y = ty * tile; y < std::min(height, (ty + 1) * tile); ++y)
      for (int64_t x = tx * tile; x < std::min(width, (tx + 1) * tile); ++x) fn(c, s, f, x, y, x + 0.5f, y + 0.5f);
  }
}

std::vector<torch::Tensor> rasterize_fwd(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                         torch::Tensor features, torch::Tensor depths, torch::Tensor offsets,
                                         torch::Tensor ids, int64_t width, int64_t height, int64_t tile) {
  means2d = means2d.contiguous(); conics = conics.contiguous(); opacities = opacities.contiguous();
  features = features.contiguous(); depths = depths.contiguous();
  const int64_t C = means2d.size(0), N = means2d.size(1), D = features.size(2);
  const int64_t tw = (width + tile - 1) / tile, th = (height + tile - 1) / tile, T = tw * th;
  auto render = torch::zeros({C, height, width, D}, torch::kFloat32);
  auto alpha = torch::zeros({C, height, width}, torch::kFloat32);
  auto last = torch::zeros({C, height, width}, torch::kInt32);
  auto median = torch::zeros({C, height, width}, torch::kFloat32);
  const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opacities.data_ptr<float>(),
              *ft = features.data_ptr<float>(), *dp = depths.data_ptr<float>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int* id = ids.data_ptr<int>();
  float *out = render.data_ptr<float>(), *al = alpha.data_ptr<float>(), *md = median.data_ptr<float>();
  int* ls = last.data_ptr<int>();
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    for_each_tile_pixel(b, e, T, tw, tile, width, height, off, [&](int64_t c, int64_t s, int64_t f, int64_t x,
                                                                 int64_t y, float px, float py) {
      const int64_t pix = (c * height + y) * width + x;
      float* o = out + pix * D;
      float med = 0.f, last_depth = 0.f;
      bool med_set = false;
      int64_t last_j = s;
      const float Tr = composite(id, s, f, c, N, m, cn, op, px, py,
                                 [&](int64_t j, int, int64_t cg, float a, float T_in, float nT) {
        const float w = a * T_in;
        const float* fg = ft + cg * D;
        for (int64_t q = 0; q < D; ++q) o[q] += w * fg[q];
        if (!med_set && nT <= 0.5f) { med = dp[cg]; med_set = true; }
        last_depth = dp[cg];
        last_j = j + 1;
      });
      al[pix] = 1.f - Tr;
      ls[pix] = (int)(last_j - s);
      md[pix] = med_set ? med : last_depth;
    });
  });
  return {render, alpha, last, median};
}

std::vector<torch::Tensor> rasterize_bwd(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                         torch::Tensor features, torch::Tensor offsets, torch::Tensor ids,
                                         torch::Tensor alpha, torch::Tensor last, torch::Tensor v_render,
                                         torch::Tensor v_alpha, int64_t width, int64_t height, int64_t tile) {
  means2d = means2d.contiguous(); conics = conics.contiguous(); opacities = opacities.contiguous();
  features = features.contiguous(); v_render = v_render.contiguous(); v_alpha = v_alpha.contiguous();
  const int64_t C = means2d.size(0), N = means2d.size(1), D = features.size(2);
  const int64_t tw = (width + tile - 1) / tile, th = (height + tile - 1) / tile, T = tw * th;
  const int nthreads = at::get_num_threads();
  const int64_t stride = 2 + 3 + 1 + D;  // per-Gaussian gradient record
  std::vector<std::vector<float>> acc(nthreads);
  const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opacities.data_ptr<float>(),
              *ft = features.data_ptr<float>(), *al = alpha.data_ptr<float>(), *vr = v_render.data_ptr<float>(),
              *va = v_alpha.data_ptr<float>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int* id = ids.data_ptr<int>();
  const int* ls = last.data_ptr<int>();
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    std::vector<float>& gacc = acc[at::get_thread_num()];
    if (gacc.empty()) gacc.assign(C * N * stride, 0.f);
    std::vector<float> buf(D);
    for_each_tile_pixel(b, e, T, tw, tile, width, height, off, [&](int64_t c, int64_t s, int64_t, int64_t x,
                                                                 int64_t y, float px, float py) {
      const int64_t pix = (c * height + y) * width + x;
      const float T_final = 1.f - al[pix];
      float Tr = T_final;
      const float* vo = vr + pix * D;
      const float vap = va[pix];
      std::fill(buf.begin(), buf.end(), 0.f);
      for (int64_t j = s + ls[pix] - 1; j >= s; --j) {
        const int g = id[j];
        const int64_t cg = c * N + g;
        const PixelGauss q = pixel_gauss(m, cn, cg, px, py);
        if (q.sigma < 0.f) continue;
        const float dx = q.dx, dy = q.dy, ca = q.ca, cb = q.cb, cc = q.cc;
        const float vis = std::exp(-q.sigma);
        const float araw = op[cg] * vis;
        const float a = std::min(kAlphaMax, araw);
        if (a < kAlphaMin) continue;
        const float ra = 1.f / (1.f - a);
        Tr *= ra;  // transmittance in front of this Gaussian
        const float w = a * Tr;
        const float* fg = ft + cg * D;
        float* gr = gacc.data() + cg * stride;
        float v_a = 0.f;
        for (int64_t q = 0; q < D; ++q) {
          gr[6 + q] += w * vo[q];
          v_a += (fg[q] * Tr - buf[q] * ra) * vo[q];
          buf[q] += fg[q] * w;
        }
        v_a += T_final * ra * vap;
        if (araw <= kAlphaMax) {
          const float v_sigma = -araw * v_a;
          gr[0] += v_sigma * (ca * dx + cb * dy);
          gr[1] += v_sigma * (cb * dx + cc * dy);
          gr[2] += 0.5f * v_sigma * dx * dx;
          gr[3] += v_sigma * dx * dy;
          gr[4] += 0.5f * v_sigma * dy * dy;
          gr[5] += vis * v_a;
        }
      }
    });
  });
  auto total = torch::zeros({C * N, stride}, torch::kFloat32);
  float* tp = total.data_ptr<float>();
  for (auto& a : acc) {
    if (a.empty()) continue;
    for (int64_t i = 0; i < C * N * stride; ++i) tp[i] += a[i];
  }
  total = total.view({C, N, stride});
  return {total.narrow(2, 0, 2).contiguous(), total.narrow(2, 2, 3).contiguous(),
          total.select(2, 5).contiguous(), total.narrow(2, 6, D).contiguous()};
}

// Per-Gaussian visibility over the rendered pixels: sum of compositing weights alpha*T, the number of
// pixels where that weight exceeds `thresh`, and the sum of alpha alone over the same pixels (what the
// Gaussian would contribute with nothing in front; the normaliser). Same traversal as rasterize_fwd.
std::vector<torch::Tensor> accumulate_visibility(torch::Tensor means2d, torch::Tensor conics,
                                                 torch::Tensor opacities, torch::Tensor offsets, torch::Tensor ids,
                                                 int64_t width, int64_t height, int64_t tile, double thresh) {
  means2d = means2d.contiguous(); conics = conics.contiguous(); opacities = opacities.contiguous();
  const int64_t C = means2d.size(0), N = means2d.size(1);
  const int64_t tw = (width + tile - 1) / tile, th = (height + tile - 1) / tile, T = tw * th;
  const int nthreads = at::get_num_threads();
  std::vector<std::vector<float>> wacc(nthreads);
  std::vector<std::vector<int>> cacc(nthreads);
  std::vector<std::vector<float>> aacc(nthreads);
  const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opacities.data_ptr<float>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int* id = ids.data_ptr<int>();
  const float th_w = (float)thresh;
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    const int tid = at::get_thread_num();
    if (wacc[tid].empty()) { wacc[tid].assign(N, 0.f); cacc[tid].assign(N, 0); aacc[tid].assign(N, 0.f); }
    float* wv = wacc[tid].data();
    float* av = aacc[tid].data();
    int* cv = cacc[tid].data();
    for_each_tile_pixel(b, e, T, tw, tile, width, height, off, [&](int64_t c, int64_t s, int64_t f, int64_t,
                                                                 int64_t, float px, float py) {
      composite(id, s, f, c, N, m, cn, op, px, py, [&](int64_t, int g, int64_t, float a, float T_in, float) {
        const float w = a * T_in;
        wv[g] += w;
        av[g] += a;
        if (w > th_w) cv[g] += 1;
      });
    });
  });
  auto vis = torch::zeros({N}, torch::kFloat32);
  auto cnt = torch::zeros({N}, torch::kInt32);
  auto asum = torch::zeros({N}, torch::kFloat32);
  float* vp = vis.data_ptr<float>();
  float* ap = asum.data_ptr<float>();
  int* cp = cnt.data_ptr<int>();
  for (int i = 0; i < nthreads; ++i) {
    if (wacc[i].empty()) continue;
    for (int64_t g = 0; g < N; ++g) { vp[g] += wacc[i][g]; cp[g] += cacc[i][g]; ap[g] += aacc[i][g]; }
  }
  return {vis, cnt, asum};
}

// defined in gs_recon/mesh/csrc/tsdf_cpu.cpp (same extension module)
void tsdf_integrate(at::Tensor tsdf_sum, at::Tensor weight, at::Tensor color_sum, at::Tensor depths,
                    at::Tensor colors, at::Tensor Ks, at::Tensor viewmats, double lox, double loy, double loz,
                    double voxel, int64_t X, int64_t Y, int64_t Z, double trunc);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tsdf_integrate", &tsdf_integrate, "TSDF integration of depth maps (CPU)");
  m.def("isect_tiles", &isect_tiles, "tile/Gaussian intersections sorted by depth");
  m.def("rasterize_fwd", &rasterize_fwd, "CPU rasterization forward");
  m.def("rasterize_bwd", &rasterize_bwd, "CPU rasterization backward");
  m.def("accumulate_visibility", &accumulate_visibility, "per-Gaussian visibility (CPU)");
}
