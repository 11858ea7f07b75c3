// Texture baking on the CPU: every texel's surface point projected into every view, its colour accumulated
// where the view sees that point. Same definition as the torch reference gs_recon/mesh/texture.py:
// _accumulate_views_torch (parity: tests/test_texture.py), view after view in order for each texel:
//   camera-frame point pc = R p + t; in the image: z > 1e-4 and 0 <= u < W, 0 <= v < H with
//   u = fx x / max(z, 1e-6) + cx (v likewise); the rendered median depth d at pixel (floor u, floor v) must be
//   > 0 and within depth_tol of z; the face normal must face the camera centre c = -R^T t (cosine > 0.05);
//   weight cos^power; colour: bilinear in the view's image at (u, v) (pixel centres at +0.5, coordinates
//   clamped to the image as grid_sample's border padding does).
//   points, normals [T, 3], viewmats [V, 4, 4] (OpenCV world-to-camera), Ks [V, 3, 3], rgb [V, H, W, 3],
//   depth [V, H, W] (0 = not covered); acc [T, 3] and wsum [T] are added to in place. All float32.
#pragma GCC optimize("no-fast-math")  // round as the torch reference does
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

void texture_bake(at::Tensor points, at::Tensor normals, at::Tensor viewmats, at::Tensor Ks, at::Tensor rgb,
                  at::Tensor depth, double depth_tol, double power, at::Tensor acc, at::Tensor wsum) {
  points = points.contiguous();
  normals = normals.contiguous();
  viewmats = viewmats.contiguous();
  Ks = Ks.contiguous();
  rgb = rgb.contiguous();
  depth = depth.contiguous();
  for (const at::Tensor* t : {&points, &normals, &viewmats, &Ks, &rgb, &depth, &acc, &wsum})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat, "texture_bake: float32 CPU tensors only");
  TORCH_CHECK(acc.is_contiguous() && wsum.is_contiguous(), "texture_bake: acc and wsum must be contiguous");
  const int64_t T = points.size(0), V = depth.size(0), H = depth.size(1), W = depth.size(2);
  const float* P = points.data_ptr<float>();
  const float* Nn = normals.data_ptr<float>();
  const float* M = viewmats.data_ptr<float>();
  const float* Kp = Ks.data_ptr<float>();
  const float* C = rgb.data_ptr<float>();
  const float* D = depth.data_ptr<float>();
  float* A = acc.data_ptr<float>();
  float* S = wsum.data_ptr<float>();
  const float tol = (float)depth_tol, pw = (float)power;
  // camera centres c = -R^T t, once per view
  std::vector<float> centre(V * 3);
  for (int64_t v = 0; v < V; ++v) {
    const float* m = M + v * 16;
    for (int r = 0; r < 3; ++r)
      centre[v * 3 + r] = -(m[0 * 4 + r] * m[3] + m[1 * 4 + r] * m[7] + m[2 * 4 + r] * m[11]);
  }
  at::parallel_for(0, T, 2048, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float px = P[i * 3], py = P[i * 3 + 1], pz = P[i * 3 + 2];
      const float nx = Nn[i * 3], ny = Nn[i * 3 + 1], nz = Nn[i * 3 + 2];
      float a0 = A[i * 3], a1 = A[i * 3 + 1], a2 = A[i * 3 + 2], s = S[i];
      for (int64_t v = 0; v < V; ++v) {
        const float* m = M + v * 16;
        const float z = m[8] * px + m[9] * py + m[10] * pz + m[11];
        if (!(z > 1e-4f)) continue;
        const float x = m[0] * px + m[1] * py + m[2] * pz + m[3];
        const float y = m[4] * px + m[5] * py + m[6] * pz + m[7];
        const float* K = Kp + v * 9;
        const float zc = std::fmax(z, 1e-6f);
        const float u = K[0] * x / zc + K[2], w_ = K[4] * y / zc + K[5];
        if (!(u >= 0.f && u < (float)W && w_ >= 0.f && w_ < (float)H)) continue;
        const float d = D[(v * H + (int64_t)w_) * W + (int64_t)u];
        if (!(d > 0.f) || !(std::fabs(d - z) < tol)) continue;
        const float* c = centre.data() + v * 3;
        const float dx = c[0] - px, dy = c[1] - py, dz = c[2] - pz;
        const float cosv = (nx * dx + ny * dy + nz * dz) / std::fmax(std::sqrt(dx * dx + dy * dy + dz * dz), 1e-9f);
        if (!(cosv > 0.05f)) continue;
        const float wt = std::pow(cosv, pw);
        // bilinear, align_corners=False (pixel centres at +0.5), border padding: coordinates clamped
        const float ix = std::fmin(std::fmax(u - 0.5f, 0.f), (float)(W - 1));
        const float iy = std::fmin(std::fmax(w_ - 0.5f, 0.f), (float)(H - 1));
        const int64_t x0 = (int64_t)std::floor(ix), y0 = (int64_t)std::floor(iy);
        const int64_t x1 = std::min<int64_t>(x0 + 1, W - 1), y1 = std::min<int64_t>(y0 + 1, H - 1);
        const float fx = ix - (float)x0, fy = iy - (float)y0;
        const float* img = C + v * H * W * 3;
        const float* c00 = img + (y0 * W + x0) * 3;
        const float* c01 = img + (y0 * W + x1) * 3;
        const float* c10 = img + (y1 * W + x0) * 3;
        const float* c11 = img + (y1 * W + x1) * 3;
        const float w00 = (1.f - fx) * (1.f - fy), w01 = fx * (1.f - fy), w10 = (1.f - fx) * fy, w11 = fx * fy;
        a0 += wt * (w00 * c00[0] + w01 * c01[0] + w10 * c10[0] + w11 * c11[0]);
        a1 += wt * (w00 * c00[1] + w01 * c01[1] + w10 * c10[1] + w11 * c11[1]);
        a2 += wt * (w00 * c00[2] + w01 * c01[2] + w10 * c10[2] + w11 * c11[2]);
        s += wt;
      }
      A[i * 3] = a0;
      A[i * 3 + 1] = a1;
      A[i * 3 + 2] = a2;
      S[i] = s;
    }
  });
}
