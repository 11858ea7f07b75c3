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

// One tile's Gaussians, gathered in depth order before its pixels are traversed (one contiguous array instead
// of three scattered ones). thr = log(255 * opacity) + 1e-3: where the Gaussian's exponent sigma exceeds it,
// alpha = opacity * exp(-sigma) < 1/255 for certain (the margin covers float rounding), so the exp and the
// exact test are skipped there; the results are those of the plain test.
struct TileGauss {
  float mx, my, ca, cb, cc, op, thr;
  float hx, hy;  // half-widths of the box around the mean where sigma <= thr (0: none, no box test)
  int g;  // Gaussian index within its camera
};

// log(255 * opacity) + margin for every (camera, Gaussian) pair, [C * N] (-1e30 where the opacity is <= 0)
inline std::vector<float> skip_thresholds(const float* op, int64_t n) {
  std::vector<float> thr(n);
  for (int64_t i = 0; i < n; ++i) thr[i] = op[i] > 0.f ? std::log(op[i] / kAlphaMin) + 1e-3f : -1e30f;
  return thr;
}

inline void gather_tile(const int* id, int64_t s, int64_t f, int64_t c, int64_t N, const float* m, const float* cn,
                        const float* op, const float* thr, std::vector<TileGauss>& buf) {
  buf.resize(f - s);
  for (int64_t j = s; j < f; ++j) {
    const int g = id[j];
    const int64_t cg = c * N + g;
    const float a = cn[cg * 3], b = cn[cg * 3 + 1], cc = cn[cg * 3 + 2], det = a * cc - b * b;
    // sigma <= thr spans |dx| <= sqrt(2 thr cov_xx), cov = conic^-1 (cov_xx = c / det, cov_yy = a / det)
    const bool box = det > 0.f && a > 0.f && cc > 0.f && thr[cg] > 0.f && thr[cg] < 1e30f;
    const float hx = box ? std::sqrt(2.f * thr[cg] * cc / det) * 1.0001f + 1e-4f : 0.f;
    const float hy = box ? std::sqrt(2.f * thr[cg] * a / det) * 1.0001f + 1e-4f : 0.f;
    buf[j - s] = {m[cg * 2], m[cg * 2 + 1], a, b, cc, op[cg], thr[cg], hx, hy, g};
  }
}

// G's exponent at offset d = mean - pixel: sigma = 0.5 d^T [a b; b c] d (its weight there is exp(-sigma)).
inline float exponent(const TileGauss& G, float dx, float dy) {
  return 0.5f * (G.ca * dx * dx + G.cc * dy * dy) + G.cb * dx * dy;
}

// Can G's alpha reach 1/255 anywhere in the rectangle [x0, x1] x [y0, y1] of pixel centres? Its exponent
// sigma is a convex quadratic, so its minimum over the rectangle is 0 when the mean lies inside, else on an
// edge, where it is a parabola in one variable; that minimum against G.thr (which carries the margin). True
// for a degenerate conic (the per-pixel test decides) and a non-finite threshold.
inline bool reaches(const TileGauss& G, float x0, float x1, float y0, float y1) {
  const float u0 = G.mx - x1, u1 = G.mx - x0, v0 = G.my - y1, v1 = G.my - y0;  // mean - pixel ranges
  if (u0 <= 0.f && u1 >= 0.f && v0 <= 0.f && v1 >= 0.f) return true;
  // the level set's bounding box first (half-widths hx, hy; 0 when none was computed): most misses end here
  if (G.hx > 0.f && (u0 > G.hx || u1 < -G.hx || v0 > G.hy || v1 < -G.hy)) return false;
  if (!(G.ca > 0.f && G.cc > 0.f && G.ca * G.cc > G.cb * G.cb)) return true;
  float best = exponent(G, u0, std::clamp(-G.cb * u0 / G.cc, v0, v1));
  best = std::min(best, exponent(G, u1, std::clamp(-G.cb * u1 / G.cc, v0, v1)));
  best = std::min(best, exponent(G, std::clamp(-G.cb * v0 / G.ca, u0, u1), v0));
  best = std::min(best, exponent(G, std::clamp(-G.cb * v1 / G.ca, u0, u1), v1));
  return !(best > G.thr);
}

// A block of up to kBlock x kBlock pixels of one tile, traversed together: the Gaussians of the tile's list
// are visited in depth order once for the whole block, each tested once against the block (reaches) before
// its pixels, and the traversal ends when every pixel of the block has ended.
constexpr int64_t kBlock = 8;
constexpr int64_t kBlockPix = kBlock * kBlock;
struct Block {
  int64_t c, x0, y0, w, h;  // camera, first pixel, size
  float rx0, rx1, ry0, ry1;  // the rectangle of its pixel centres
  int64_t size() const { return w * h; }
  int64_t x(int64_t p) const { return x0 + p % w; }
  int64_t y(int64_t p) const { return y0 + p / w; }
  int64_t pix(int64_t p, int64_t width, int64_t height) const { return (c * height + y(p)) * width + x(p); }
};

// The traversal the three kernels share: for k in [b, e) (k = camera * T + tile), the tile's depth-sorted
// Gaussians gathered into a thread-local buffer, then fn(blk, buf, n) for each pixel block of the tile.
template <typename Fn>
inline void for_each_block(int64_t b, int64_t e, int64_t T, int64_t tw, int64_t tile, int64_t width, int64_t height,
                           const int64_t* off, const int* id, int64_t N, const float* m, const float* cn,
                           const float* op, const float* thr, Fn&& fn) {
  std::vector<TileGauss> buf;
  for (int64_t k = b; k < e; ++k) {
    const int64_t c = k / T, t = k % T, tx = t % tw, ty = t / tw;
    const int64_t s = off[c * (T + 1) + t], f = off[c * (T + 1) + t + 1];
    if (f == s) continue;  // nothing here: the outputs keep their zero initialisation
    gather_tile(id, s, f, c, N, m, cn, op, thr, buf);
    const int64_t xe = std::min(width, (tx + 1) * tile), ye = std::min(height, (ty + 1) * tile);
    for (int64_t y0 = ty * tile; y0 < ye; y0 += kBlock)
      for (int64_t x0 = tx * tile; x0 < xe; x0 += kBlock) {
        Block blk{c, x0, y0, std::min(kBlock, xe - x0), std::min(kBlock, ye - y0), 0.f, 0.f, 0.f, 0.f};
        blk.rx0 = x0 + 0.5f; blk.rx1 = x0 + blk.w - 0.5f; blk.ry0 = y0 + 0.5f; blk.ry1 = y0 + blk.h - 0.5f;
        fn(blk, buf.data(), f - s);
      }
  }
}

// Front-to-back compositing of buf[0, n) over the pixels of one block: fn(p, j, G, a, Tr, nT) for every
// (pixel p, Gaussian j) where alpha a >= 1/255, Tr the pixel's transmittance in front of it and nT behind it;
// a pixel stops before its transmittance would fall to kTMin. Tr[p] ends as each pixel's final transmittance.
// Per pixel, the same sequence as a traversal of the whole list at that pixel alone.
template <typename Fn>
inline void composite_block(const Block& blk, const TileGauss* buf, int64_t n, float* Tr, Fn&& fn) {
  const int64_t P = blk.size();
  float px[kBlockPix], py[kBlockPix];
  bool done[kBlockPix];
  for (int64_t p = 0; p < P; ++p) {
    px[p] = blk.x(p) + 0.5f; py[p] = blk.y(p) + 0.5f; Tr[p] = 1.f; done[p] = false;
  }
  int64_t alive = P;
  for (int64_t j = 0; j < n && alive > 0; ++j) {
    const TileGauss& G = buf[j];
    if (!reaches(G, blk.rx0, blk.rx1, blk.ry0, blk.ry1)) continue;
    float sg[kBlockPix];
    for (int64_t p = 0; p < P; ++p) sg[p] = exponent(G, G.mx - px[p], G.my - py[p]);  // vectorised over the block
    for (int64_t p = 0; p < P; ++p) {
      if (done[p] || sg[p] < 0.f || sg[p] > G.thr) continue;
      const float a = std::min(kAlphaMax, G.op * std::exp(-sg[p]));
      if (a < kAlphaMin) continue;
      const float nT = Tr[p] * (1.f - a);
      if (nT <= kTMin) { done[p] = true; --alive; continue; }
      fn(p, j, G, a, Tr[p], nT);
      Tr[p] = nT;
    }
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
  const std::vector<float> thr = skip_thresholds(op, C * N);
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    for_each_block(b, e, T, tw, tile, width, height, off, id, N, m, cn, op, thr.data(),
                   [&](const Block& blk, const TileGauss* gb, int64_t n) {
      float Tr[kBlockPix], med[kBlockPix], last_depth[kBlockPix];
      bool med_set[kBlockPix];
      int64_t n_used[kBlockPix], pix[kBlockPix];
      for (int64_t p = 0; p < blk.size(); ++p) {
        med[p] = last_depth[p] = 0.f; med_set[p] = false; n_used[p] = 0; pix[p] = blk.pix(p, width, height);
      }
      composite_block(blk, gb, n, Tr, [&](int64_t p, int64_t j, const TileGauss& G, float a, float T_in, float nT) {
        const float w = a * T_in;
        const int64_t cg = blk.c * N + G.g;
        const float* fg = ft + cg * D;
        float* o = out + pix[p] * D;
        for (int64_t q = 0; q < D; ++q) o[q] += w * fg[q];
        if (!med_set[p] && nT <= 0.5f) { med[p] = dp[cg]; med_set[p] = true; }
        last_depth[p] = dp[cg];
        n_used[p] = j + 1;
      });
      for (int64_t p = 0; p < blk.size(); ++p) {
        al[pix[p]] = 1.f - Tr[p];
        ls[pix[p]] = (int)n_used[p];
        md[pix[p]] = med_set[p] ? med[p] : last_depth[p];
      }
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
  const std::vector<float> thr = skip_thresholds(op, C * N);
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    std::vector<float>& gacc = acc[at::get_thread_num()];
    if (gacc.empty()) gacc.assign(C * N * stride, 0.f);
    std::vector<float> after(kBlockPix * D);  // per pixel: sum of w * feature over the Gaussians behind
    for_each_block(b, e, T, tw, tile, width, height, off, id, N, m, cn, op, thr.data(),
                   [&](const Block& blk, const TileGauss* gb, int64_t) {
      // back to front, each pixel from the last Gaussian its forward pass composited
      const int64_t P = blk.size();
      float px[kBlockPix], py[kBlockPix], T_final[kBlockPix], Tr[kBlockPix], vap[kBlockPix];
      const float* vo[kBlockPix];
      int64_t stop[kBlockPix], jmax = 0;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t pix = blk.pix(p, width, height);
        px[p] = blk.x(p) + 0.5f; py[p] = blk.y(p) + 0.5f;
        T_final[p] = Tr[p] = 1.f - al[pix];
        vo[p] = vr + pix * D; vap[p] = va[pix];
        stop[p] = ls[pix];
        jmax = std::max(jmax, stop[p]);
      }
      std::fill(after.begin(), after.begin() + P * D, 0.f);
      for (int64_t j = jmax - 1; j >= 0; --j) {
        const TileGauss& G = gb[j];
        if (!reaches(G, blk.rx0, blk.rx1, blk.ry0, blk.ry1)) continue;
        const float ca = G.ca, cb = G.cb, cc = G.cc;
        const int64_t cg = blk.c * N + G.g;
        const float* fg = ft + cg * D;
        float* gr = gacc.data() + cg * stride;
        float g6[6] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f};  // this Gaussian's mean, conic, opacity gradients here
        float sg[kBlockPix];
        for (int64_t p = 0; p < P; ++p) sg[p] = exponent(G, G.mx - px[p], G.my - py[p]);  // vectorised over the block
        for (int64_t p = 0; p < P; ++p) {
          if (j >= stop[p] || sg[p] < 0.f || sg[p] > G.thr) continue;
          const float dx = G.mx - px[p], dy = G.my - py[p];
          const float vis = std::exp(-sg[p]);
          const float araw = G.op * vis;
          const float a = std::min(kAlphaMax, araw);
          if (a < kAlphaMin) continue;
          const float ra = 1.f / (1.f - a);
          Tr[p] *= ra;  // transmittance in front of this Gaussian
          const float w = a * Tr[p];
          float* buf = after.data() + p * D;
          const float* v = vo[p];
          float v_a = 0.f;
          for (int64_t k = 0; k < D; ++k) {
            gr[6 + k] += w * v[k];
            v_a += (fg[k] * Tr[p] - buf[k] * ra) * v[k];
            buf[k] += fg[k] * w;
          }
          v_a += T_final[p] * ra * vap[p];
          if (araw <= kAlphaMax) {
            const float v_sigma = -araw * v_a;
            g6[0] += v_sigma * (ca * dx + cb * dy);
            g6[1] += v_sigma * (cb * dx + cc * dy);
            g6[2] += 0.5f * v_sigma * dx * dx;
            g6[3] += v_sigma * dx * dy;
            g6[4] += 0.5f * v_sigma * dy * dy;
            g6[5] += vis * v_a;
          }
        }
        for (int k = 0; k < 6; ++k) gr[k] += g6[k];
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
  const std::vector<float> thr = skip_thresholds(op, C * N);
  at::parallel_for(0, C * T, 1, [&](int64_t b, int64_t e) {
    const int tid = at::get_thread_num();
    if (wacc[tid].empty()) { wacc[tid].assign(N, 0.f); cacc[tid].assign(N, 0); aacc[tid].assign(N, 0.f); }
    float* wv = wacc[tid].data();
    float* av = aacc[tid].data();
    int* cv = cacc[tid].data();
    for_each_block(b, e, T, tw, tile, width, height, off, id, N, m, cn, op, thr.data(),
                   [&](const Block& blk, const TileGauss* gb, int64_t n) {
      float Tr[kBlockPix];
      composite_block(blk, gb, n, Tr, [&](int64_t, int64_t, const TileGauss& G, float a, float T_in, float) {
        const float w = a * T_in;
        wv[G.g] += w;
        av[G.g] += a;
        if (w > th_w) cv[G.g] += 1;
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
// defined in projection_cpu.cpp
std::vector<torch::Tensor> project_fwd(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                       torch::Tensor viewmats, torch::Tensor Ks, torch::Tensor opacities,
                                       int64_t width, int64_t height, double eps2d, double near_plane,
                                       double far_plane);
std::vector<torch::Tensor> project_bwd(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                       torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                       double eps2d, torch::Tensor v_means2d, torch::Tensor v_conics,
                                       torch::Tensor v_depths);
// defined in gs_recon/mesh/csrc/uv_cpu.cpp
std::vector<at::Tensor> texel_hits(at::Tensor tri, int64_t size, double tol);
// defined in gs_recon/mesh/csrc/bake_cpu.cpp
void texture_bake(at::Tensor points, at::Tensor normals, at::Tensor viewmats, at::Tensor Ks, at::Tensor rgb,
                  at::Tensor depth, double depth_tol, double power, at::Tensor acc, at::Tensor wsum);

// Every entry point runs without the GIL (the kernels touch no Python object): a viewer thread's render or a
// background import proceeds while the training thread is inside a kernel (tests/test_render_cpu.py).
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("texel_hits", &texel_hits, "texel centres inside UV triangles, with barycentrics (CPU)", nogil());
  m.def("texture_bake", &texture_bake, "texture baking: texels' colours from the views that see them (CPU)", nogil());
  m.def("tsdf_integrate", &tsdf_integrate, "TSDF integration of depth maps (CPU)", nogil());
  m.def("project_fwd", &project_fwd, "EWA projection forward (CPU)", nogil());
  m.def("project_bwd", &project_bwd, "EWA projection backward (CPU)", nogil());
  m.def("isect_tiles", &isect_tiles, "tile/Gaussian intersections sorted by depth", nogil());
  m.def("rasterize_fwd", &rasterize_fwd, "CPU rasterization forward", nogil());
  m.def("rasterize_bwd", &rasterize_bwd, "CPU rasterization backward", nogil());
  m.def("accumulate_visibility", &accumulate_visibility, "per-Gaussian visibility (CPU)", nogil());
}
